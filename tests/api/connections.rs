//! Acceptance tests for slow and idle connections: thousands of half-open connections do not
//! stop the server answering, a connection that never finishes its request head (or sits idle
//! after a response) is closed, connections over the cap are refused at once, an upload
//! that trickles is cut off while a normal one goes through, and a client that stops reading
//! a response loses its connection.

use std::time::Duration;

use crate::helpers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on anything that must happen "soon": it only turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

/// Reads until the server closes the connection; panics if it does not within `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration, what: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(bound, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{what}: the server kept the connection open"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection that has sent part of a request head and then nothing more.
async fn half_open(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    let partial = format!("GET / HTTP/1.1\r\nHost: {}\r\nX-Slow: ", app.addr);
    s.write_all(partial.as_bytes()).await.expect("write");
    s
}

#[tokio::test]
async fn thousands_of_half_open_connections_do_not_stop_the_server_answering() {
    // Held for the whole test: they must not be timed out while it runs.
    let app = spawn_app_with(|c| c.header_read_timeout = Duration::from_secs(600)).await;
    let mut held = Vec::with_capacity(2000);
    for _ in 0..2000 {
        held.push(half_open(&app).await);
    }
    let c = client();
    let res = tokio::time::timeout(HANG, c.get(app.url("/healthz")).send())
        .await
        .expect("/healthz answers while 2,000 connections hang")
        .expect("healthz");
    assert_eq!(res.status(), 200);
    let ann = app.login("Ann", false).await;
    assert_eq!(
        app.get(&ann, "/").await.status(),
        200,
        "pages are served too"
    );
    let metrics = app.get_text(&c, "/metrics").await.1;
    let open: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tracecoder_connections_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("an open-connections gauge:\n{metrics}"));
    assert!(open >= 2000.0, "the gauge counts them: {open}");
    // Every one of them is still served (none was dropped to make room).
    for s in held.iter_mut().take(10) {
        s.write_all(b"1\r\n\r\n").await.expect("finish the head");
        let answer = read_response_head(s).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
}

/// Reads one response head (a connection kept alive does not close after it).
async fn read_response_head(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(HANG, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_or_sits_idle_is_closed() {
    let app = spawn_app_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    // Well above the 1 s configured, well below hyper's own 30 s default: the setting is used.
    let bound = Duration::from_secs(20);

    let mut s = half_open(&app).await;
    let answer = read_until_closed(&mut s, bound, "a half-sent request head").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "closed, at most with a 408: {answer}"
    );

    // Connected, and never a byte.
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    read_until_closed(&mut s, bound, "a silent connection").await;

    // A whole request is answered; the connection then idles (keep-alive) and is closed too.
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    s.write_all(request.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut s, bound, "an idle keep-alive connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once_and_served_again_when_one_ends() {
    let app = spawn_app_with(|c| {
        c.max_connections = 20;
        c.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(half_open(&app).await);
    }
    // Accepted in order, so this one finds every slot taken.
    let mut over = TcpStream::connect(app.addr).await.expect("connect");
    let answer = read_until_closed(&mut over, HANG, "a connection over the cap").await;
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after"),
        "a short 503, then closed: {answer}"
    );

    drop(held.pop());
    assert!(
        healthz_comes_back(&app.base).await,
        "a slot freed by a closed connection is used again"
    );
}

#[tokio::test]
async fn a_trickled_upload_is_cut_off_and_a_normal_upload_works() {
    let app = spawn_app_with(|c| {
        c.upload_min_bytes_per_second = 1024;
        c.upload_rate_window = Duration::from_secs(1);
    })
    .await;
    let admin = app.login("Admin", true).await;

    // A few bytes of the file, then nothing more, ever.
    let first = b"trace_id,flow_session,turn_number,user_message,ai_response\n".to_vec();
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(first)]),
        futures_util::stream::pending(),
    );
    let form = streamed_upload("Trickle", "trickle.csv", body);
    let sent = tokio::time::timeout(
        HANG,
        admin.post(app.url("/admin/import")).multipart(form).send(),
    )
    .await
    .expect("the server cut the trickle off instead of waiting for it");
    match sent {
        Ok(res) => {
            assert_eq!(res.status(), 408);
            let page = res.text().await.unwrap_or_default();
            assert!(page.contains("The upload was stopped"), "{page}");
        }
        // The server may close before the client reads its answer.
        Err(e) => assert!(!e.is_timeout(), "cut off by the server: {e}"),
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM datasets WHERE slug = 'trickle'")
            .await,
        0,
        "nothing imported"
    );

    let (status, page) = app
        .upload(&admin, "Normal", "n.csv", simple_csv(200, 5))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Imported 1000 traces"), "{page}");
}

/// A client that asks for a large download and then reads nothing holds its connection only
/// until the server's writes have been stalled for `response_stall_timeout`: with every slot
/// taken by such clients, new connections are refused, and then served again.
#[tokio::test]
async fn clients_that_stop_reading_a_response_lose_their_connection() {
    let app = spawn_app_with(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(600);
        c.response_stall_timeout = Duration::from_secs(2);
    })
    .await;
    // About 15 MB of export (every trace): far more than the sockets' buffers hold.
    let mut csv = String::from("trace_id,flow_session,turn_number,user_message,ai_response\n");
    let answer = "a".repeat(5000);
    for i in 0..3000 {
        csv.push_str(&format!("t{i},c{i},1,question {i},{answer}\n"));
    }
    let admin = app.login("Admin", true).await;
    let (status, _) = app.upload(&admin, "big", "big.csv", csv.into_bytes()).await;
    assert_eq!(status, 200);
    drop(admin); // and its keep-alive connection
    let res = client()
        .post(app.url("/login"))
        .form(&[("name", "Admin"), ("admin", "1"), ("next", "/")])
        .send()
        .await
        .expect("sign-in");
    let cookie = set_cookie_value(&res, "tracecoder_session").expect("session cookie");
    drop(res);
    // Let the clients' keep-alive connections close, so both slots are free.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut stalled = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(2048).expect("small buffer");
        let mut s = socket.connect(app.addr).await.expect("connect");
        let request = format!(
            "GET /d/big/export.csv?all=1 HTTP/1.1\r\nHost: {}\r\nCookie: tracecoder_session={cookie}\r\n\r\n",
            app.addr
        );
        s.write_all(request.as_bytes()).await.expect("request sent");
        stalled.push(s); // and never read
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = TcpStream::connect(app.addr).await.expect("connect");
    let refused = read_until_closed(&mut over, HANG, "a connection over the cap").await;
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "both slots are held by the stalled downloads: {refused}"
    );
    assert!(
        healthz_comes_back(&app.base).await,
        "the stalled downloads were cut off and their slots served again"
    );
    drop(stalled);
}
