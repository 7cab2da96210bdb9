"""malloc's settings for generation: set once, kept-free memory given back while a window is made in parts, and
a user's own setting left alone."""

import threading

import pytest

from app.core import memory


@pytest.fixture
def calls(monkeypatch):
    made: list[tuple[int, int]] = []
    monkeypatch.setattr(memory, "_MALLOPT", lambda parameter, value: made.append((parameter, value)) or 1)
    monkeypatch.setattr(memory, "_done", False)
    monkeypatch.setattr(memory, "_lean", 0)
    for name in memory._USER.values():
        monkeypatch.delenv(name, raising=False)
    return made


def test_tuned_once_then_lean_while_windows_are_made_in_parts(calls):
    assert memory.tune_malloc() is True and memory.tune_malloc() is False
    assert calls == [(memory.M_MMAP_THRESHOLD, memory.MAPPED_FROM), (memory.M_TRIM_THRESHOLD, memory.KEPT_FREE),
                     (memory.M_ARENA_MAX, 1)]
    calls.clear()
    with memory.lean():
        with memory.lean():  # two windows at once: lean until both are done
            pass
        assert calls == [(memory.M_TRIM_THRESHOLD, memory.LEAN_FREE)]
    assert calls == [(memory.M_TRIM_THRESHOLD, memory.LEAN_FREE), (memory.M_TRIM_THRESHOLD, memory.KEPT_FREE)]


def test_a_window_in_parts_before_the_tuning_starts_it_lean(calls):
    with memory.lean():
        assert calls == []
        memory.tune_malloc()
        assert (memory.M_TRIM_THRESHOLD, memory.LEAN_FREE) in calls
    assert calls[-1] == (memory.M_TRIM_THRESHOLD, memory.KEPT_FREE)


def test_the_users_settings_win(calls, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.tune_malloc() is False
    with memory.lean():
        pass
    assert calls == [(memory.M_MMAP_THRESHOLD, memory.MAPPED_FROM)]


def test_lean_is_counted_across_threads(calls):
    memory.tune_malloc()
    inside, leave = threading.Barrier(3), threading.Event()

    def window() -> None:
        with memory.lean():
            inside.wait(10)
            assert leave.wait(10)

    threads = [threading.Thread(target=window) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    assert memory._lean == 2
    leave.set()
    for thread in threads:
        thread.join(10)
    assert memory._lean == 0 and calls[-1] == (memory.M_TRIM_THRESHOLD, memory.KEPT_FREE)


def test_release_gives_the_kept_memory_back_unless_the_user_manages_it(calls, monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: trims.append(pad) or 1)
    memory.release()
    assert trims == []  # not tuned: nothing was kept
    memory.tune_malloc()
    memory.release()
    assert trims == [0]
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    memory.release()
    assert trims == [0]


def test_the_real_calls_are_accepted_where_there_is_glibc():
    if memory._MALLOPT is None:
        pytest.skip("no glibc")
    assert memory._MALLOC_TRIM is not None
    memory.release()  # whatever the state: never fails
