//! The kinds of process a leaf certificate may be issued to (extension OID `.3`).

use std::fmt;
use std::str::FromStr;

use super::PkiError;

/// The component type of a leaf certificate; endpoints authorise callers by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// A member of a member's Raft group.
    Coordinator,
    /// A storage process serving chunks.
    Node,
    /// The CLI, the FUSE mount or any program using the client library.
    Client,
}

impl Component {
    /// All components, for policies that admit everyone certified by the federation.
    pub const ALL: [Component; 3] = [Component::Coordinator, Component::Node, Component::Client];

    /// The string stored in the certificate; stable forever, as certificates outlive binaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Coordinator => "coordinator",
            Component::Node => "node",
            Component::Client => "client",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Component {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "coordinator" => Ok(Component::Coordinator),
            "node" => Ok(Component::Node),
            "client" => Ok(Component::Client),
            other => Err(PkiError::UnknownComponent(other.to_owned())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;

    #[test]
    fn component_strings_round_trip() {
        for c in Component::ALL {
            assert_eq!(c.as_str().parse::<Component>().unwrap(), c);
        }
        assert!("Coordinator".parse::<Component>().is_err());
    }
}
