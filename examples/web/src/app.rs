//! The axum application of the `axum` example: a plain `Router`, nothing
//! insane-specific (the same value is served on tokio by `axum::serve` in
//! insane-bench's baseline).
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | `200`, `text/plain`, `Hello, World!` |
//! | `GET /json` | `200`, `application/json`, `{"message":"Hello, World!"}` |
//! | `POST /echo` | `200`, the request body back |

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use serde::Serialize;

/// The greeting of `GET /` and `GET /json`.
pub const GREETING: &str = "Hello, World!";

/// The example's routes (see the module documentation).
pub fn router() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/json", get(json))
        .route("/echo", post(echo))
}

/// `GET /`: plain text.
async fn hello() -> &'static str {
    GREETING
}

/// The body of `GET /json`.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// `GET /json`: the greeting as a JSON object.
async fn json() -> Json<Message> {
    Json(Message { message: GREETING })
}

/// `POST /echo`: the request body, unchanged.
async fn echo(body: Bytes) -> Bytes {
    body
}
