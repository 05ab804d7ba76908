//! Single-use rules under parallel requests: the database decides, so exactly one wins.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    twenty_challenges_verified_in_parallel_with_the_same_code_give_exactly_one_success,
    thirty_parallel_wrong_codes_on_one_challenge_never_get_past_the_attempt_limit,
    parallel_verifies_of_one_challenge_with_the_right_code_succeed_once,
);

async fn twenty_challenges_verified_in_parallel_with_the_same_code_give_exactly_one_success(
    app: TestApp,
) {
    let (fid, secret) = app.totp_factor(None).await;
    let code = app.totp_code(&secret, 0);
    let mut ids = vec![];
    for _ in 0..20 {
        ids.push(app.challenge(&fid).await["id"].as_str().unwrap().to_owned());
    }
    let results = futures_join(ids.iter().map(|id| app.verify(id, &code))).await;
    let valid = results
        .iter()
        .filter(|(s, v)| *s == StatusCode::CREATED && v["valid"] == true)
        .count();
    let invalid = results
        .iter()
        .filter(|(s, v)| *s == StatusCode::CREATED && v["valid"] == false)
        .count();
    assert_eq!(valid, 1, "{results:?}");
    // The other 19 are replays: refused, but not guesses, so not charged to the failure
    // limits (they used to be, and filled the factor's 10-failure limit: 9 got 429).
    assert_eq!(invalid, 19, "{results:?}");
    let lock = app
        .state
        .store
        .find_factor_lock(&fid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lock.consecutive_failures, 0,
        "replays are not wrong guesses"
    );
    // So the user's next legitimate code is accepted (it was 429 while replays counted).
    app.clock.advance_millis(30_000);
    let next = app.challenge(&fid).await;
    let (s, v) = app
        .verify(next["id"].as_str().unwrap(), &app.totp_code(&secret, 0))
        .await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");
}

async fn thirty_parallel_wrong_codes_on_one_challenge_never_get_past_the_attempt_limit(
    app: TestApp,
) {
    let (fid, secret) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    let right = app.totp_code(&secret, 0);
    let wrongs: Vec<String> = (0..30)
        .map(|i| format!("{:06}", (right.parse::<u32>().unwrap() + 1 + i) % 1_000_000))
        .collect();
    let results = futures_join(wrongs.iter().map(|w| app.verify(cid, w))).await;
    let evaluated = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|(s, v)| {
            *s == StatusCode::BAD_REQUEST && v["code"] == "one_time_code_too_many_attempts"
        })
        .count();
    assert_eq!(evaluated, 5, "exactly the limit was evaluated: {results:?}");
    assert_eq!(refused, 25);
    assert_eq!(
        app.state
            .store
            .find_challenge(cid)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        5
    );
    let (s, _) = app.verify(cid, &right).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "dead even for the right code");
}

async fn parallel_verifies_of_one_challenge_with_the_right_code_succeed_once(app: TestApp) {
    let (_, g) = app
        .post("/auth/factors/enroll", json!({ "type": "generic_otp" }))
        .await;
    let c = app.challenge(g["id"].as_str().unwrap()).await;
    let cid = c["id"].as_str().unwrap();
    let code = c["code"].as_str().unwrap();
    let results = futures_join((0..20).map(|_| app.verify(cid, code))).await;
    let valid = results.iter().filter(|(_, v)| v["valid"] == true).count();
    let previously = results
        .iter()
        .filter(|(s, v)| {
            *s == StatusCode::UNPROCESSABLE_ENTITY
                && v["code"] == "authentication_challenge_previously_verified"
        })
        .count();
    assert_eq!(valid, 1, "{results:?}");
    assert_eq!(previously, 19);
}

/// Runs all futures concurrently on the test runtime (requests really overlap: each is an
/// independent HTTP request to a multi-threaded server).
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let futs: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(futs.len());
    let mut pending: Vec<_> = futs
        .into_iter()
        .enumerate()
        .map(|(i, f)| (i, Some(f)))
        .collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (i, slot) in pending.iter_mut() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[*i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.unwrap()));
    out
}
