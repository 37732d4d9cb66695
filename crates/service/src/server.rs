//! The self-telemetry HTTP server: tapline's own metrics at `/metrics`, liveness at
//! `/healthz`, readiness (the graph is running) at `/readyz`.

use std::net::SocketAddr;

use tapline_core::telemetry::Telemetry;

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` fires.
pub async fn serve(
    telemetry: Telemetry,
    addr: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("service.telemetry.metrics.endpoint: cannot listen on {addr}: {e}")
    })?;
    let t1 = telemetry.clone();
    let t2 = telemetry.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let t = t1.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        t.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = t2.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
                    }
                }
            }),
        );
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    }))
}
