//! The node's routes for the `Chunks` service: `Put` and `Get`, which carry chunk bytes, framed
//! by [`crate::wire`] so those bytes are not copied; every other call through tonic's generated
//! server.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use collective_proto::chunk::chunks_server::ChunksServer;
use collective_proto::chunk_limits::CHUNK_MESSAGE_BYTES_MAX;
use collective_proto::chunk_wire::{GET_PATH, PUT_PATH};
use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::server::NamedService;
use tower_service::Service;

use super::service::ChunkService;
use crate::wire;

/// The `Chunks` service as the node's listener serves it.
#[derive(Debug, Clone)]
pub struct ChunkRoutes {
    service: ChunkService,
    generated: ChunksServer<ChunkService>,
    /// Gets numbered, over all connections, in the order the node begins to handle them: a get's
    /// rank in its waits for a read slot and a send turn (see [`crate::slots`]).
    gets_asked: Arc<AtomicU64>,
}

impl ChunkRoutes {
    pub fn new(service: ChunkService) -> ChunkRoutes {
        let generated = ChunksServer::new(service.clone())
            .max_decoding_message_size(CHUNK_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(CHUNK_MESSAGE_BYTES_MAX);
        ChunkRoutes {
            service,
            generated,
            gets_asked: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl NamedService for ChunkRoutes {
    const NAME: &'static str = <ChunksServer<ChunkService> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for ChunkRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.service.clone();
        match request.uri().path() {
            PUT_PATH => Box::pin(async move {
                Ok(match service.serve_put(request).await {
                    Ok(reply) => wire::response(wire::FramesBody::new(
                        [wire::message(&reply)],
                        Some(wire::ok_trailers()),
                        (),
                    )),
                    Err(status) => status.into_http(),
                })
            }),
            GET_PATH => {
                // Numbered when the get's task first runs (the layers above call `call` from their
                // futures, not as HTTP/2 accepts the stream), before any of its waits: close to
                // the order the gets were asked, which those waits would lose.
                let rank = self.gets_asked.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    Ok(service
                        .serve_get(request, rank)
                        .await
                        .unwrap_or_else(|status| status.into_http()))
                })
            }
            _ => {
                let mut generated = self.generated.clone();
                Box::pin(async move { generated.call(request).await })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_are_the_generated_paths() {
        let name = <ChunksServer<ChunkService> as NamedService>::NAME;
        assert_eq!(PUT_PATH, format!("/{name}/Put"));
        assert_eq!(GET_PATH, format!("/{name}/Get"));
    }
}
