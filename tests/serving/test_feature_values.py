"""A batch that names its features once (`feature_names`) and sends each patient's `values` in that order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving.bounds import feature_ranges


@pytest.fixture(scope="module")
def server(shared_server):
    return shared_server


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client


def _varied_items(kit, prefix: str, n: int) -> list[dict]:
    """`n` feature items with values drawn within each feature's accepted range, some not known (null)."""
    rng = np.random.default_rng(7)
    ranges = feature_ranges()
    items = []
    for i in range(n):
        features = {}
        for name in kit.trained.feature_names:
            low, high = ranges.get(name, (0.0, 10.0))
            low, high = max(low, -20.0), min(high, max(low, -20.0) + 40.0)
            features[name] = None if rng.random() < 0.1 else float(rng.uniform(low, high))
        features["active_days_total"] = float(1 + i)  # in the model's population: scored
        features["days_since_last_engagement"] = float(i % 5)
        items.append({"patient_id": f"{prefix}-{i}", "as_of": "2025-10-01T00:00:00Z", "features": features})
    return items


def _as_values(items: list[dict], names: list[str]) -> list[dict]:
    return [{**{k: v for k, v in item.items() if k != "features"}, "values": [item["features"][n] for n in names]}
            for item in items]


def _same(a: dict, b: dict) -> None:
    assert a["patient_id"] == b["patient_id"]
    assert abs(a["risk"] - b["risk"]) <= 1e-12
    assert (a["tier"], a["support"], a["status"]) == (b["tier"], b["support"], b["status"])
    assert [(r["feature"], r["value"], r["sentence"]) for r in a["reasons"]] == [
        (r["feature"], r["value"], r["sentence"]) for r in b["reasons"]]
    assert np.allclose([r["contribution"] for r in a["reasons"]], [r["contribution"] for r in b["reasons"]],
                       rtol=0, atol=1e-12)


def test_values_named_once_are_scored_as_the_same_features_sent_by_name(client, kit):
    items = _varied_items(kit, "vals", 8)
    names = list(reversed(kit.trained.feature_names))  # any order: each value goes with its name
    by_name = client.post("/score", json={"patients": items})
    by_position = client.post("/score", json={"feature_names": names, "patients": _as_values(items, names)})
    assert by_name.status_code == 200 and by_position.status_code == 200, (by_name.text[:300], by_position.text[:300])
    assert len({r["risk"] for r in by_name.json()["results"]}) > 1  # the patients differ
    for a, b in zip(by_name.json()["results"], by_position.json()["results"], strict=True):
        _same(a, b)
    # Both forms in one request: answers in request order, each as when sent alone.
    mixed = [item if i % 2 else row for i, (item, row) in enumerate(zip(items, _as_values(items, names)))]
    both = client.post("/score", json={"feature_names": names, "patients": mixed})
    assert both.status_code == 200, both.text[:300]
    for a, b in zip(by_name.json()["results"], both.json()["results"], strict=True):
        _same(a, b)


def test_explain_and_triage_take_values_named_once(client, kit):
    items = _varied_items(kit, "vals-tri", 6)
    names = kit.trained.feature_names[::2] + kit.trained.feature_names[1::2]
    rows = _as_values(items, names)
    explained = client.post("/explain", json={"patient": items[2]}).json()
    from_values = client.post("/explain", json={"feature_names": names, "patient": rows[2]})
    assert from_values.status_code == 200, from_values.text[:300]
    assert from_values.json()["contributions"] == explained["contributions"]
    assert from_values.json()["risk"] == explained["risk"]
    ranked = client.post("/triage", json={"patients": items, "capacity": 3, "policy": "risk"}).json()
    from_values = client.post("/triage", json={"feature_names": names, "patients": rows, "capacity": 3,
                                               "policy": "risk"})
    assert from_values.status_code == 200, from_values.text[:300]
    assert [c["patient_id"] for c in from_values.json()["contact"]] == [c["patient_id"] for c in ranked["contact"]]


def test_a_value_out_of_range_leaves_its_patient_out_naming_its_position_and_feature(client, kit):
    names = kit.trained.feature_names
    j = names.index("sessions_7d")
    rows = _as_values([kit.item(f"vals-range-{i}") for i in range(3)], names)
    rows[1]["values"][j] = -424242.0
    reply = client.post("/score", json={"feature_names": names, "patients": rows})
    assert reply.status_code == 200, reply.text[:300]
    assert [r["patient_id"] for r in reply.json()["results"]] == ["vals-range-0", "vals-range-2"]
    assert reply.json()["errors"] == [{"index": 1, "patient_id": "vals-range-1", "problems": [
        {"field": f"patients[1].values[{j}]", "rule": f"must be at least 0 (feature_names[{j}], sessions_7d)",
         "type": "out_of_range"}]}]
    assert "424242" not in reply.text


def _refusals(kit) -> list[tuple[str, dict, str, str]]:
    """(name, body, the field the refusal must name, a sentinel it must not repeat)."""
    names = list(kit.trained.feature_names)
    row = _as_values([kit.item("vals-bad")], names)[0]
    text = {**row, "values": ["SENTINEL-val-5150", *row["values"][1:]]}
    return [
        ("no names", {"patients": [row]}, "feature_names", "SENTINEL-none"),
        ("one value short", {"feature_names": names, "patients": [row, {**row, "patient_id": "vals-bad-2",
                                                                         "values": row["values"][:-1]}]},
         "patients[1].values", "SENTINEL-none"),
        ("a name twice", {"feature_names": [*names[:-1], names[0]], "patients": [row]}, f"feature_names[{len(names) - 1}]",
         "SENTINEL-none"),
        ("an unknown name", {"feature_names": [*names[:-1], "shoe_size"], "patients": [row]},
         f"feature_names[{len(names) - 1}]", "SENTINEL-none"),
        ("a model feature not named", {"feature_names": names[:-1], "patients": [{**row, "values": row["values"][:-1]}]},
         "feature_names", "SENTINEL-none"),
        ("text for a value", {"feature_names": names, "patients": [text]}, "patients[0].values[0]", "SENTINEL-val-5150"),
        ("values and features", {"feature_names": names, "patients": [{**row, "features": kit.item()["features"]}]},
         "patients[0]", "SENTINEL-none"),
    ]


def test_names_and_values_that_do_not_fit_are_refused_naming_the_field(client, kit):
    for name, body, field, sentinel in _refusals(kit):
        reply = client.post("/score", content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        assert reply.status_code == 422, (name, reply.status_code, reply.text[:300])
        problems = reply.json()["problems"]
        assert field in [p["field"] for p in problems], (name, problems)
        assert all(p["rule"] for p in problems) and sentinel not in reply.text, name
