"""An exit's identity: the die event's time, and the alias its FinishedAt gives it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from agent.engine import exits as ex
from agent.engine.ordered import OrderedPool

T = datetime(2026, 11, 29, 6, 14, 51, 451150, tzinfo=UTC)


def _die(nanos: str, code: str = "1", **attrs: str) -> dict:
    return {"Type": "container", "Action": "die", "id": "c1", "timeNano": int(nanos), "time": int(nanos) // 10**9,
            "Actor": {"ID": "c1", "Attributes": {"exitCode": code, "image": "img", "name": "n", **attrs}}}


def test_the_die_events_time_is_the_identity_to_the_microsecond() -> None:
    exit = ex.exit_from_event(_die("1795932891451150579"))
    assert exit is not None and exit.time == T and exit.key == "c1@2026-11-29T06:14:51.451150+00:00"
    assert ex.exit_from_event(_die("1795932891451150579", **{ex.HELPER_LABEL: "1"})) is None
    assert ex.exit_from_event({**_die("1"), "Action": "start"}) is None


def test_two_exits_of_a_crash_loop_get_two_ids() -> None:
    first, second = ex.exit_from_event(_die("1795932891451150579")), ex.exit_from_event(_die("1795932891651150579"))
    assert first is not None and second is not None and first.time and second.time
    assert ex.event_id("h", "c1", first.time) != ex.event_id("h", "c1", second.time)
    assert ex.event_id("h", "c1", first.time) == ex.event_id("h", "c1", T)


def test_since_is_exact_and_round_trips() -> None:
    assert ex.docker_since(T) == "1795932891.451150000"
    assert ex.event_time({"timeNano": 1795932891451150000}) == T


def test_the_state_alias_only_when_finished_at_belongs_to_this_die() -> None:
    exit = ex.Exit("c1", 1, time=T)
    assert ex.alias_of(exit, T - timedelta(milliseconds=20)) == ex.state_key("c1", T - timedelta(milliseconds=20))
    assert ex.alias_of(exit, T + timedelta(milliseconds=300)) == ""  # the container died again since
    assert ex.alias_of(exit, T - timedelta(minutes=5)) == ""
    assert ex.alias_of(exit, None) == ""


def test_the_alias_window_is_ten_seconds_inclusive_at_both_ends() -> None:
    # Under load a die event can follow its FinishedAt by seconds: the window that keeps one exit
    # from being counted under two names must hold to its full 10 s, and not one microsecond more.
    exit = ex.Exit("c1", 1, time=T)
    us = timedelta(microseconds=1)
    assert ex.DIE_AFTER_FINISH == timedelta(seconds=10)
    for lag in (timedelta(0), timedelta(seconds=2), timedelta(seconds=9, microseconds=999_999), timedelta(seconds=10)):
        assert ex.alias_of(exit, T - lag) == ex.state_key("c1", T - lag), lag
    assert ex.alias_of(exit, T - timedelta(seconds=10) - us) == ""
    assert ex.alias_of(exit, T + us) == ""  # finished after its own die: a later exit


def test_only_a_die_event_has_an_alias() -> None:
    state_exit = ex.Exit("c1", 1, time=T, source="state")
    assert ex.alias_of(state_exit, T - timedelta(milliseconds=20)) == ""
    assert ex.alias_of(ex.Exit("c1", 1, time=None), T) == ""
    assert ex.Exit("c1", 1, time=T, source="state").key == ex.state_key("c1", T)
    assert ex.Exit("c1", 1, time=T).key == ex.exit_key("c1", T)


def test_state_keys_sort_between_die_keys_of_the_same_container() -> None:
    f = T - timedelta(milliseconds=20)
    assert ex.exit_key("c1", f) < ex.state_key("c1", f) < ex.exit_key("c1", T) < ex.exit_key("c1", f + ex.DIE_AFTER_FINISH)


def test_the_pool_runs_containers_side_by_side_and_each_container_in_order() -> None:
    async def main() -> list[str]:
        pool = OrderedPool(4)
        log: list[str] = []
        slow_started, release = asyncio.Event(), asyncio.Event()

        async def step(name: str, wait: asyncio.Event | None = None) -> str:
            log.append(f"start {name}")
            if wait is not None:
                slow_started.set()
                await wait.wait()
            log.append(f"end {name}")
            return name

        a1 = pool.submit("a", lambda: step("a1", release))
        a2 = pool.submit("a", lambda: step("a2"))
        await slow_started.wait()
        b1 = pool.submit("b", lambda: step("b1"))
        assert await b1 == "b1"  # not held up by a's slow step
        assert not a2.done()
        release.set()
        assert (await a1, await a2) == ("a1", "a2")
        return log

    log = asyncio.run(main())
    assert log.index("end b1") < log.index("end a1") < log.index("start a2")


def test_an_exit_carries_the_die_events_code_image_and_name() -> None:
    exit = ex.exit_from_event(_die("1795932891451150579", code="255", image="shop/web:2", name="web-1"))
    assert exit == ex.Exit("c1", 255, image_ref="shop/web:2", name="web-1", time=T)
    bare = ex.exit_from_event({"Type": "container", "Action": "die", "id": "c2", "time": 1795932891, "Actor": {}})
    assert bare == ex.Exit("c2", 0, time=datetime(2026, 11, 29, 6, 14, 51, tzinfo=UTC))  # exit code 0 when absent
    assert ex.exit_from_event(_die("1795932891451150579", code="oops")) is None


def test_event_time_keeps_microseconds_and_falls_back_to_seconds() -> None:
    assert ex.event_time({"timeNano": 1795932891451150999}) == T  # nanoseconds cut, not rounded
    assert ex.event_time({"time": 1795932891}) == T.replace(microsecond=0)
    assert ex.event_time({}) == ex.EPOCH


def test_keys_and_ids_are_utc_whatever_the_clock_zone() -> None:
    elsewhere = T.astimezone(timezone(timedelta(hours=-5)))
    assert ex.stamp(elsewhere) == ex.stamp(T) == "2026-11-29T06:14:51.451150+00:00"
    assert ex.event_id("h", "c1", elsewhere) == ex.event_id("h", "c1", T)
    assert len(ex.event_id("h", "c1", T)) == 32 and ex.event_id("h", "c1", T) != ex.event_id("h2", "c1", T)


def test_the_container_id_is_the_actors_then_the_events() -> None:
    ev = {**_die("1795932891451150579"), "id": "legacy"}
    ev["Actor"] = {**ev["Actor"], "ID": "actor"}
    assert ex.exit_from_event(ev).container_id == "actor"  # type: ignore[union-attr]
    ev["Actor"] = {"Attributes": {}}
    assert ex.exit_from_event(ev).container_id == "legacy"  # type: ignore[union-attr]
    del ev["id"]
    assert ex.exit_from_event(ev).container_id == ""  # type: ignore[union-attr]
