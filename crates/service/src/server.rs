//! The self-telemetry HTTP server: tapline's own metrics at `/metrics`, liveness at
//! `/healthz`, readiness (every component of the running graph does its job) at `/readyz`.

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
                let report = t2.readiness().report();
                async move {
                    let status = if report.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, report.text)
                }
            }),
        );
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    }))
}
