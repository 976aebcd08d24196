//! The gateway's HTTP server, put together by [`GatewayBuilder`]: the OpenAI-compatible routes
//! (behind admission, then the paywall and its payment schemes unless free) forwarded to the
//! subnet's miners or an upstream OpenAI-compatible server, and the facilitator's x402 API.

use crate::admission::{admit, Admission, Terms, WorkTimeout};
use crate::discovery::Catalogue;
use crate::facilitator::Facilitator;
use crate::paywall::{error, paywall, read_request_body, Paywall, Pricing};
use crate::revenue::RevenueShare;
use crate::router::{
    MinerRouter, RouteError, ATTEMPTS_HEADER, MINER_HOTKEY_HEADER, MINER_UID_HEADER,
};
use crate::scheme::PaymentScheme;
use crate::wire::{AnyPayment, FacilitatorRequest, PaymentRequirements, PaymentRequirementsV1};
use axum::{
    body::Body,
    extract::{rejection::JsonRejection, Request, State},
    http::{header, HeaderName, StatusCode},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use mycel_client::agents::{registration_file, request_base, AgentDirectory};
use mycel_client::api::AGENT_REGISTRATION_PATH;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// How the gateway serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Base URL of the OpenAI-compatible server requests are forwarded to (when no miner router
    /// is given).
    pub upstream: String,
    pub pricing: Pricing,
    /// Serve without payment (local use).
    pub free: bool,
    /// The served model's prompt format: requests are read and their prompts counted with it
    /// before they are priced ([`crate::admission`]).
    pub format: Arc<mycel_tokenizer::PromptFormat>,
    /// How long the upstream server may take for a request (with --upstream).
    pub timeout: WorkTimeout,
}

struct Upstream {
    base: String,
    http: reqwest::Client,
    timeout: WorkTimeout,
    forwarded: AtomicU64,
    failed: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    upstream: Arc<Upstream>,
    facilitator: Option<Arc<Facilitator>>,
    miners: Option<Arc<MinerRouter>>,
    revenue: Option<Arc<RevenueShare>>,
    agents: Option<Arc<AgentDirectory>>,
    catalogue: Option<Arc<Catalogue>>,
    /// Takes x402 payments (not free, with a scheme).
    x402: bool,
}

/// The one way to put a gateway together, for `mycel gateway`, tests and benchmarks:
///
/// ```ignore
/// let gateway = GatewayBuilder::new(config)
///     .facilitator(facilitator.clone())                 // POST /verify, /settle, GET /supported
///     .scheme(SessionScheme::new(book))                 // asked first: X-MYCEL-SESSION
///     .scheme(ExactScheme::new(facilitator, pay_to, 60)) // x402 exact
///     .miners(miners)                                   // else config.upstream
///     .revenue(revenue);                                // a share of each payment to the miner
/// gateway.serve(listener, limits, shutdown).await?;
/// ```
///
/// Paid routes take payment through the schemes, asked in the order added; a gateway that is not
/// `free` and has no scheme answers them 503 `no_facilitator`. Spawn the background loops of the
/// parts beside it: [`MinerRouter::follow_metagraph`], [`RevenueShare::run`],
/// [`crate::SessionBook::claim_loop`].
pub struct GatewayBuilder {
    config: GatewayConfig,
    facilitator: Option<Arc<Facilitator>>,
    schemes: Vec<Arc<dyn PaymentScheme>>,
    miners: Option<Arc<MinerRouter>>,
    revenue: Option<Arc<RevenueShare>>,
    agents: Option<Arc<AgentDirectory>>,
    catalogue: Option<Arc<Catalogue>>,
}

impl GatewayBuilder {
    /// A gateway forwarding to `config.upstream`, with no facilitator API and no scheme.
    pub fn new(config: GatewayConfig) -> GatewayBuilder {
        GatewayBuilder {
            config,
            facilitator: None,
            schemes: Vec::new(),
            miners: None,
            revenue: None,
            agents: None,
            catalogue: None,
        }
    }

    /// Serves `catalogue` at `/discovery/resources` (its completions priced as this gateway
    /// prices them); spawn [`Catalogue::follow_agents`] beside it for the agents' services.
    pub fn catalogue(mut self, catalogue: impl Into<Option<Arc<Catalogue>>>) -> Self {
        self.catalogue = catalogue.into();
        self
    }

    /// Lists the agents `directory`'s owner (the gateway's operator) owns in the registration
    /// file at `/.well-known/agent-registration.json` (served either way, empty without).
    pub fn agents(mut self, directory: impl Into<Option<Arc<AgentDirectory>>>) -> Self {
        self.agents = directory.into();
        self
    }

    /// Serves the facilitator's x402 API (`/verify`, `/settle`, `/supported`) and its metrics.
    pub fn facilitator(mut self, facilitator: impl Into<Option<Arc<Facilitator>>>) -> Self {
        self.facilitator = facilitator.into();
        self
    }

    /// Takes payment with `scheme` too, asked after the schemes added before it.
    pub fn scheme(mut self, scheme: impl PaymentScheme + 'static) -> Self {
        self.schemes.push(Arc::new(scheme));
        self
    }

    /// Sends requests to the subnet's miners through `miners` instead of `config.upstream`.
    pub fn miners(mut self, miners: impl Into<Option<Arc<MinerRouter>>>) -> Self {
        self.miners = miners.into();
        self
    }

    /// Credits `revenue` with the serving miner's share of each payment taken (with
    /// [`GatewayBuilder::miners`]).
    pub fn revenue(mut self, revenue: impl Into<Option<Arc<RevenueShare>>>) -> Self {
        self.revenue = revenue.into();
        self
    }

    /// The gateway's routes.
    pub fn router(self) -> Router {
        let admission = Arc::new(Admission {
            format: self.config.format.clone(),
            limits: self.config.pricing.limits(),
        });
        let paid = match (self.config.free, self.schemes.is_empty()) {
            (true, _) => paid_routes(),
            (false, false) => {
                let wall = Arc::new(self.paywall());
                paid_routes().layer(from_fn_with_state(wall, paywall))
            }
            (false, true) => {
                tracing::warn!("no payment scheme and not free: paid routes will answer 503");
                Router::new()
                    .route("/v1/chat/completions", post(no_facilitator))
                    .route("/v1/completions", post(no_facilitator))
            }
        };
        // Admission runs first (the outermost layer): refused requests never see the paywall.
        let paid = paid.layer(from_fn_with_state(admission, admit));
        Router::new()
            .merge(paid)
            .route("/v1/models", get(forward))
            .route("/health", get(|| async { "ok" }))
            .route("/v1/miners", get(miners_status))
            .route(AGENT_REGISTRATION_PATH, get(registration))
            .route("/metrics", get(metrics))
            .route("/discovery/resources", get(discovery))
            .route("/supported", get(supported))
            .route("/verify", post(verify))
            .route("/settle", post(settle))
            .fallback(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such endpoint; see docs/payments.md",
                )
            })
            .with_state(self.state())
    }

    /// Serves the gateway on `listener` with `limits` until `shutdown` resolves
    /// ([`mycel_http::serve`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        limits: mycel_http::ServeLimits,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        mycel_http::serve(listener, self.router(), limits, shutdown).await
    }

    fn paywall(&self) -> Paywall {
        let mut wall = Paywall::new(
            self.config.pricing.clone(),
            "mycel inference (OpenAI-compatible completion)",
            self.schemes.clone(),
        );
        if let (Some(miners), Some(revenue)) = (&self.miners, &self.revenue) {
            let (miners, revenue) = (miners.clone(), revenue.clone());
            wall.on_settled = Some(Arc::new(move |headers, price| {
                let hotkey = headers
                    .get(MINER_HOTKEY_HEADER)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.parse().ok());
                if let Some(miner) = hotkey.and_then(|h| miners.miner(h)) {
                    revenue.credit(miner.coldkey, price);
                }
            }));
        }
        wall
    }

    fn state(self) -> AppState {
        let upstream = Arc::new(Upstream {
            base: self.config.upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .pool_max_idle_per_host(256)
                .build()
                .unwrap_or_default(),
            timeout: self.config.timeout,
            forwarded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        if let Some(c) = &self.catalogue {
            let schemes = if self.config.free {
                Vec::new()
            } else {
                self.schemes.clone()
            };
            c.set_terms(self.config.pricing.clone(), schemes);
        }
        AppState {
            upstream,
            facilitator: self.facilitator,
            miners: self.miners,
            revenue: self.revenue,
            agents: self.agents,
            catalogue: self.catalogue,
            x402: !self.config.free && !self.schemes.is_empty(),
        }
    }
}

/// `GET /discovery/resources`: what this gateway sells and the network's agents offer
/// ([`Catalogue`]), filtered and paged by the query.
async fn discovery(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(params): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let query = match mycel_types::x402::discovery::Query::parse(&params) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_query", e),
    };
    let Some(catalogue) = app.catalogue.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no_catalogue",
            "this gateway lists no catalogue",
        );
    };
    let (models, updated) = catalogue.models(|| served_models(app.clone())).await;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let base = request_base(host, "http://127.0.0.1");
    Json(catalogue.page(&query, &base, &models, updated)).into_response()
}

/// The model names this gateway's `/v1/models` lists (empty if it cannot say).
async fn served_models(app: AppState) -> Vec<String> {
    let request = Request::builder()
        .method("GET")
        .uri("/v1/models")
        .body(Body::empty())
        .unwrap_or_default();
    let response = forward(State(app), request).await;
    if !response.status().is_success() {
        return Vec::new();
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| {
            v["data"].as_array().map(|d| {
                d.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn paid_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(forward))
        .route("/v1/completions", post(forward))
}

async fn no_facilitator() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_facilitator",
        "this gateway has no facilitator: start it with --rpc and --key, or --free",
    )
}

/// `GET /.well-known/agent-registration.json`: the gateway's ERC-8004 registration file, built
/// from what it serves: the OpenAI-compatible API at the address the request reached, whether it
/// takes x402 payments, and the agents its operator owns.
async fn registration(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let base = request_base(host, "http://127.0.0.1");
    let registrations = match &state.agents {
        Some(directory) => directory.registrations().await,
        None => Vec::new(),
    };
    let description = if state.miners.is_some() {
        "mycel gateway: OpenAI-compatible inference from a subnet's miners, every answer with a \
         signed receipt anyone can re-run; paid per call in mUSD over x402"
    } else {
        "mycel gateway: an OpenAI-compatible API paid per call in mUSD over x402"
    };
    // A public document: any page may read it (an explorer showing the agent).
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        Json(registration_file(
            "mycel gateway",
            description,
            &base,
            state.x402,
            registrations,
        )),
    )
        .into_response()
}

/// `GET /v1/miners`: the miners the gateway routes to, their health, and the revenue share.
async fn miners_status(State(app): State<AppState>) -> Response {
    match &app.miners {
        Some(m) => {
            let mut status = m.status();
            if let Some(r) = &app.revenue {
                status["revenue_share"] = r.status();
            }
            Json(status).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "no_routing",
            "this gateway forwards to one --upstream; start it with --netuid to route to miners",
        ),
    }
}

/// Sends the request to a miner of the subnet (failing over between them) and returns the first
/// good answer, with headers naming the miner.
async fn route_to_miners(
    miners: &MinerRouter,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let terms = parts.extensions.get::<Terms>().cloned();
    let served = match miners
        .route(
            parts.method.clone(),
            path,
            &parts.headers,
            bytes,
            terms.as_deref(),
        )
        .await
    {
        Ok(s) => s,
        Err(RouteError::Busy(seconds)) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "miners_busy",
                format!(
                    "every miner tried is busy; retry after {seconds} s (you were not charged)"
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            return response;
        }
        Err(RouteError::NoMiners) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_miners",
                format!(
                    "no miner of {} has an endpoint yet; you were not charged",
                    miners.source()
                ),
            )
        }
        Err(RouteError::AllFailed(failures)) => {
            let tried = failures
                .iter()
                .map(|(uid, _, e)| format!("uid {uid}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            return error(
                StatusCode::BAD_GATEWAY,
                "miners_failed",
                format!("every miner tried failed ({tried}); you were not charged"),
            );
        }
        Err(RouteError::Client {
            status,
            headers,
            body,
        }) => {
            let mut response = Response::builder().status(status);
            for (name, value) in &headers {
                if !is_hop_by_hop(name) {
                    response = response.header(name, value);
                }
            }
            return response.body(Body::from(body)).unwrap_or_else(|e| {
                error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_bad_answer",
                    e.to_string(),
                )
            });
        }
    };
    let mut response = Response::builder().status(served.status);
    for (name, value) in &served.headers {
        if !is_hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    response
        .header(MINER_HOTKEY_HEADER, served.miner.hotkey.to_checksum(None))
        .header(MINER_UID_HEADER, served.miner.uid.to_string())
        .header(ATTEMPTS_HEADER, served.attempts.to_string())
        .header(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "x-mycel-miner, x-mycel-miner-uid, x-mycel-attempts, x-mycel-receipt, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE",
        )
        .body(Body::from(served.body))
        .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, "upstream_bad_answer", e.to_string()))
}

/// Forwards the request to a miner (with --netuid) or the upstream server and returns its answer.
async fn forward(State(app): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match read_request_body(body).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if let Some(miners) = &app.miners {
        return route_to_miners(miners, parts, bytes).await;
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", app.upstream.base);
    let timeout = app
        .upstream
        .timeout
        .for_terms(parts.extensions.get::<Terms>().map(|t| t.as_ref()));
    let mut outgoing = app
        .upstream
        .http
        .request(parts.method.clone(), &url)
        .timeout(timeout);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        outgoing = outgoing.header(header::CONTENT_TYPE, ct);
    }
    if let Some(accept) = parts.headers.get(header::ACCEPT) {
        outgoing = outgoing.header(header::ACCEPT, accept);
    }
    let answer = match outgoing.body(bytes).send().await {
        Ok(a) => a,
        Err(e) => {
            app.upstream.failed.fetch_add(1, Relaxed);
            return error(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("the model server did not answer ({e}); you were not charged"),
            );
        }
    };
    app.upstream.forwarded.fetch_add(1, Relaxed);
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if is_hop_by_hop(name) {
            continue;
        }
        response = response.header(name, value);
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| {
            error(
                StatusCode::BAD_GATEWAY,
                "upstream_bad_answer",
                e.to_string(),
            )
        })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "transfer-encoding" | "content-length" | "keep-alive" | "upgrade"
    )
}

#[allow(clippy::result_large_err)] // an axum Response, built once per refused request
fn facilitator(app: &AppState) -> Result<&Arc<Facilitator>, Response> {
    app.facilitator.as_ref().ok_or_else(no_facilitator_response)
}

fn no_facilitator_response() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_facilitator",
        "this gateway runs in free mode without a facilitator",
    )
}

async fn supported(State(app): State<AppState>) -> Response {
    match facilitator(&app) {
        Ok(f) => Json(f.supported()).into_response(),
        Err(r) => r,
    }
}

/// Reads a facilitator request body into a payment and requirements of the same version.
#[allow(clippy::result_large_err)]
fn parse_facilitator_request(
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(AnyPayment, PaymentRequirements), Response> {
    let Json(body) =
        body.map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_payload", e.body_text()))?;
    let request: FacilitatorRequest = serde_json::from_value(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            format!("{e}; expected {{x402Version, paymentPayload, paymentRequirements}}"),
        )
    })?;
    let payment = AnyPayment::from_json(&request.payment_payload)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string()))?;
    let requirements = match payment {
        AnyPayment::V1(_) => {
            serde_json::from_value::<PaymentRequirementsV1>(request.payment_requirements)
                .map(|r| r.to_v2())
        }
        AnyPayment::V2(_) => {
            serde_json::from_value::<PaymentRequirements>(request.payment_requirements)
        }
    }
    .map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            format!("paymentRequirements: {e}"),
        )
    })?;
    Ok((payment, requirements))
}

async fn verify(State(app): State<AppState>, body: Result<Json<Value>, JsonRejection>) -> Response {
    let f = match facilitator(&app) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match parse_facilitator_request(body) {
        Ok((payment, requirements)) => {
            Json(f.verify(&payment, &requirements).await).into_response()
        }
        Err(r) => r,
    }
}

async fn settle(State(app): State<AppState>, body: Result<Json<Value>, JsonRejection>) -> Response {
    let f = match facilitator(&app) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (payment, requirements) = match parse_facilitator_request(body) {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    // Settle in a task of its own: a client that hangs up (a timeout) must not cancel a
    // settlement half way; its retry waits for this one and gets its result.
    let f = f.clone();
    let settlement =
        tokio::spawn(async move { f.settle(&payment, &requirements).await }.in_current_span());
    match settlement.await {
        Ok(response) => Json(response).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "settle_failed",
            format!("settlement task failed: {e}"),
        ),
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP mycel_gateway_{name} {help}");
        let _ = writeln!(out, "# TYPE mycel_gateway_{name} counter");
        let _ = writeln!(out, "mycel_gateway_{name} {value}");
    };
    metric(
        "upstream_forwarded_total",
        "Requests forwarded to the upstream server.",
        app.upstream.forwarded.load(Relaxed),
    );
    metric(
        "upstream_failed_total",
        "Requests the upstream server did not answer.",
        app.upstream.failed.load(Relaxed),
    );
    if let Some(f) = &app.facilitator {
        let c = f.counters();
        metric(
            "payments_verified_total",
            "Payments that verified.",
            c.verified.load(Relaxed),
        );
        metric(
            "payments_refused_total",
            "Payments refused at verification.",
            c.refused.load(Relaxed),
        );
        metric(
            "payments_settled_total",
            "Payments settled on chain.",
            c.settled.load(Relaxed),
        );
        metric(
            "settlements_failed_total",
            "Settlements that failed.",
            c.settle_failed.load(Relaxed),
        );
        metric(
            "settlements_deduplicated_total",
            "Settle calls answered from an earlier settlement of the same authorization.",
            c.settle_deduplicated.load(Relaxed),
        );
    }
    if let Some(miners) = &app.miners {
        let status = miners.status();
        for (name, help) in [
            ("served", "Answers of this miner returned to clients."),
            (
                "failed",
                "Attempts of this miner that failed (error, timeout, bad receipt).",
            ),
        ] {
            let _ = writeln!(out, "# HELP mycel_gateway_miner_{name}_total {help}");
            let _ = writeln!(out, "# TYPE mycel_gateway_miner_{name}_total counter");
            for m in status["miners"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "mycel_gateway_miner_{name}_total{{uid=\"{}\",hotkey=\"{}\"}} {}",
                    m["uid"],
                    m["hotkey"].as_str().unwrap_or_default(),
                    m[name].as_u64().unwrap_or_default()
                );
            }
        }
    }
    if let Some(revenue) = &app.revenue {
        let status = revenue.status();
        let _ = writeln!(
            out,
            "# HELP mycel_gateway_revenue_transfers_total Miner share transfers submitted."
        );
        let _ = writeln!(out, "# TYPE mycel_gateway_revenue_transfers_total counter");
        let _ = writeln!(
            out,
            "mycel_gateway_revenue_transfers_total {}",
            status["transfers"].as_u64().unwrap_or_default()
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
