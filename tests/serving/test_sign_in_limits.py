"""Issue 12, item 7: wrong keys and failed sign-ins are limited per client; a signed-out session stays signed
out across a restart; the page's origin check refuses a missing Origin and does not trust Host."""

from __future__ import annotations

import httpx
import pytest

from serving.launcher import stop_service
from serving.settings import Hardening

LIMIT = 3
SETTINGS = Hardening(failed_auth_limit=LIMIT, failed_auth_window_s=120)
# A loopback address other than 127.0.0.1 (Linux routes all of 127.0.0.0/8 to the loopback interface).
GUESSER = "127.0.0.2"


def _origin(url: str) -> dict[str, str]:
    return {"origin": url}


def test_wrong_keys_get_429_with_retry_after_once_over_the_limit(kit, shared_server):
    # The limit counts per client address. This test guesses from an address of its own on the loopback network
    # (the shared server's other callers come from 127.0.0.1), so it can use the shared server and its default
    # limit without limiting anyone else; that 127.0.0.1 stays unlimited is checked too.
    limit = Hardening().failed_auth_limit
    item = {"patients": [kit.item("pat-key")]}
    with httpx.Client(base_url=shared_server.url, transport=httpx.HTTPTransport(local_address=GUESSER)) as guesser:
        assert guesser.post("/score", json=item, headers=kit.auth).status_code == 200
        wrong = [guesser.post("/score", json=item, headers={"Authorization": f"Bearer guess-{i}"})
                 for i in range(limit + 2)]
        assert [r.status_code for r in wrong[:limit]] == [401] * limit
        assert all(r.status_code == 429 and int(r.headers["retry-after"]) > 0 for r in wrong[limit:])
        # Once limited, a right guess is not told apart from a wrong one.
        assert guesser.post("/score", json=item, headers=kit.auth).status_code == 429
    assert httpx.post(shared_server.url + "/score", json=item, headers=kit.auth).status_code == 200


def test_sign_in_is_limited_and_a_signed_out_session_stays_out_after_a_restart(kit, tmp_path):
    decisions = tmp_path / "decisions.db"
    server = kit.launch("sessions", settings=SETTINGS, decisions_path=decisions)
    try:
        with httpx.Client(base_url=server.url, follow_redirects=False) as page:
            here = _origin(server.url)
            assert page.post("/ui/login", data={"key": kit.key}).status_code == 403  # no Origin
            host, port = server.url.removeprefix("http://").split(":")
            forged = {"origin": f"http://evil.example:{port}", "host": f"evil.example:{port}"}
            assert page.post("/ui/login", data={"key": kit.key}, headers=forged).status_code == 403
            assert page.post("/ui/login", data={"key": kit.key}, headers=here).status_code == 303
            kept = page.cookies.get("lapse_session")
            assert page.get("/ui/api/model").status_code == 200
            with httpx.Client(base_url=server.url, follow_redirects=False) as second:
                assert second.post("/ui/login", data={"key": kit.key}, headers=here).status_code == 303
                signed_out = second.cookies.get("lapse_session")
                assert second.post("/ui/logout", headers=here).status_code == 303
            with httpx.Client(base_url=server.url) as attacker:
                tries = [attacker.post("/ui/login", data={"key": f"guess-{i}"}, headers=here)
                         for i in range(LIMIT + 1)]
                assert [t.status_code for t in tries] == [401] * LIMIT + [429]
                assert int(tries[-1].headers["retry-after"]) > 0
    finally:
        stop_service(server.process)
    restarted = kit.launch("sessions-again", settings=SETTINGS, decisions_path=decisions)
    try:
        def model_card(cookie: str) -> int:
            with httpx.Client(base_url=restarted.url, cookies={"lapse_session": cookie}) as c:
                return c.get("/ui/api/model").status_code

        assert model_card(kept) == 200  # sessions live in the database, not in one process
        assert model_card(signed_out) == 401  # and so does signing out
        assert model_card(kept[:-2] + "xx") == 401  # a tampered cookie
    finally:
        stop_service(restarted.process)


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1.evil.example", ""])
def test_the_origin_check_refuses_lookalikes(origin):
    from serving.ui import allowed_origins

    allowed = allowed_origins("", ("127.0.0.1", 3000))
    assert "http://127.0.0.1:3000" in allowed and "http://localhost:3000" in allowed
    assert origin not in allowed
    assert allowed_origins("https://lapse.example.org/", ("0.0.0.0", 3000)) == {"https://lapse.example.org"}
