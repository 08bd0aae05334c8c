"""The check level is a context variable: local to a thread or an asyncio task, properly nested
(issue 14, defect 15: it was one process-global value, so two threads' overlapping
``with losskit.checks(...)`` blocks left it changed after both had exited)."""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading

import pytest
import torch

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit._checks import check_number

NAN_INPUT = torch.tensor([float("nan"), 1.0])


def _value_checks_run() -> bool:
    """Whether a loss call here runs the ``full`` value checks (a NaN input is refused)."""
    try:
        LF.mse_loss(NAN_INPUT, torch.ones(2))
    except LossInputError:
        return True
    return False


def _run_in_thread(target) -> None:
    errors: list[BaseException] = []

    def body():
        try:
            target()
        except BaseException as e:  # re-raised in the test's thread
            errors.append(e)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_overlapping_blocks_in_two_threads_restore_each_level():
    """A enters, B enters, A exits, B exits: with one global level B restored A's "full"."""
    a_entered, b_entered, a_exited = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def thread_a():
        with losskit.checks("full"):
            a_entered.set()
            assert b_entered.wait(30)
            seen["a_inside"] = losskit.get_checks(), _value_checks_run()
        a_exited.set()
        seen["a_after"] = losskit.get_checks()

    def thread_b():
        assert a_entered.wait(30)
        seen["b_before"] = losskit.get_checks()  # A's block is open, in another thread
        with losskit.checks("full"):
            b_entered.set()
            assert a_exited.wait(30)
            seen["b_inside"] = losskit.get_checks(), _value_checks_run()
        seen["b_after"] = losskit.get_checks()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == {
        "a_inside": ("full", True),
        "a_after": "fast",
        "b_before": "fast",
        "b_inside": ("full", True),
        "b_after": "fast",
    }
    assert losskit.get_checks() == "fast" and not _value_checks_run()


def test_a_block_in_another_thread_does_not_reach_this_one():
    opened, release = threading.Event(), threading.Event()

    def other():
        with losskit.checks("full"):
            opened.set()
            assert release.wait(30)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert opened.wait(30)
        assert losskit.get_checks() == "fast" and not _value_checks_run()
    finally:
        release.set()
        thread.join(timeout=60)


def test_blocks_nest_and_restore_on_error():
    with losskit.checks("full"):
        with losskit.checks("fast"):
            assert losskit.get_checks() == "fast" and not _value_checks_run()
        assert losskit.get_checks() == "full" and _value_checks_run()
        with pytest.raises(RuntimeError), losskit.checks("fast"):
            raise RuntimeError
        assert losskit.get_checks() == "full"
    assert losskit.get_checks() == "fast"


def test_set_checks_is_local_and_new_threads_start_from_the_default():
    seen = {}

    def body():
        losskit.set_checks("full")
        seen["here"] = losskit.get_checks(), _value_checks_run()
        _run_in_thread(lambda: seen.setdefault("new_thread", losskit.get_checks()))

    # a fresh context, so that set_checks cannot leak into the other tests of this thread
    contextvars.Context().run(body)
    assert seen == {"here": ("full", True), "new_thread": "fast"}
    assert losskit.get_checks() == "fast"
    _run_in_thread(lambda: losskit.set_checks("full"))
    assert losskit.get_checks() == "fast"


def test_asyncio_tasks_keep_their_own_levels():
    async def task(level: str, steps: list[str]) -> list[tuple[str, bool]]:
        seen = []
        with losskit.checks(level):
            for _ in range(3):
                await asyncio.sleep(0)  # let the other task run inside its own block
                seen.append((losskit.get_checks(), _value_checks_run()))
                steps.append(level)
        return seen

    async def main():
        steps: list[str] = []
        full, fast = await asyncio.gather(task("full", steps), task("fast", steps))
        return full, fast, steps, losskit.get_checks()

    full, fast, steps, after = asyncio.run(main())
    assert full == [("full", True)] * 3 and fast == [("fast", False)] * 3
    assert steps[:2] == ["full", "fast"]  # the blocks did overlap
    assert after == "fast" and losskit.get_checks() == "fast"


def test_bad_levels_are_refused():
    with pytest.raises(LossInputError, match="set_checks: level is 'paranoid'; expected one of"):
        losskit.set_checks("paranoid")
    with (
        pytest.raises(LossInputError, match="checks: level is 'Full'; expected one of fast, full"),
        losskit.checks("Full"),
    ):
        pass
    assert losskit.get_checks() == "fast"


@pytest.mark.parametrize(
    ("value", "bounds", "match"),
    [
        (float("nan"), {"ge": 0.0}, r"g: gamma is nan; expected a number >= 0"),
        (math.inf, {"ge": 0.0}, r"g: gamma is inf; expected a finite number >= 0"),
        (-math.inf, {}, r"g: gamma is -inf; expected a finite number"),
        (-0.5, {"ge": 0.0}, r"g: gamma is -0.5; expected a number >= 0"),
        (1.0, {"gt": 0.0, "lt": 1.0}, r"g: gamma is 1.0; expected a number > 0 and < 1"),
        (True, {}, r"g: gamma is True; expected a real number"),
        ("2", {}, r"g: gamma is '2'; expected a real number"),
    ],
)
def test_check_number_refuses(value, bounds, match):
    with pytest.raises(LossInputError, match=match):
        check_number("g", "gamma", value, **bounds)


def test_check_number_accepts():
    assert check_number("g", "gamma", 2, ge=0.0) == 2.0
    assert check_number("g", "gamma", math.inf, gt=0.0, allow_inf=True) == math.inf
    assert check_number("g", "gamma", 0.0, ge=0.0, le=0.0) == 0.0


def test_full_checks_is_marked_constant_as_torch_compiler_marks_it():
    """_checks marks full_checks by hand (torch.compiler.assume_constant_result imports
    torch._dynamo); the mark must be the one that function sets."""
    from losskit._checks import full_checks

    def probe() -> bool:
        return True

    torch.compiler.assume_constant_result(probe)
    marks = {k: v for k, v in vars(probe).items() if k.startswith("_dynamo")}
    assert marks and all(getattr(full_checks, k, None) == v for k, v in marks.items())
