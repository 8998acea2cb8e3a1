"""What only the SQLite replay cache does: one file for the processes of one machine,
created by the first proof, purged as it is written, and never waited on past its budget.
(What every replay cache does is in test_dpop_replay_contract.py.)"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest

from backends.dpop.replay_sqlite import FILE_NAME, PURGE_BATCH, SQLiteReplayCache
from backends.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_000.0
JKT = "j" * 43


async def test_the_file_is_made_by_the_first_proof_and_by_nothing_before(tmp_path) -> None:
    path = tmp_path / "var" / FILE_NAME
    cache = SQLiteReplayCache(path)
    await cache.aclose()
    assert not path.parent.exists()  # building and closing one touches no file
    cache = SQLiteReplayCache(path)
    assert await cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    await cache.aclose()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


async def test_each_proof_purges_a_few_expired_ones_oldest_first(tmp_path) -> None:
    path = tmp_path / FILE_NAME
    cache = SQLiteReplayCache(path)
    for n in range(3 * PURGE_BATCH):
        assert await cache.first_use(JKT, f"old{n}", expires_at=NOW + n, now=NOW)
    later = NOW + 3 * PURGE_BATCH
    assert await cache.first_use(JKT, "new", expires_at=later + 60, now=later)
    # PURGE_BATCH of the 3 * PURGE_BATCH expired rows are gone, the oldest; "new" came in.
    assert await cache.entries() == 2 * PURGE_BATCH + 1
    with sqlite3.connect(path) as db:
        (kept,) = db.execute("SELECT min(expires_at) FROM dpop_replay").fetchone()
        assert kept == NOW + PURGE_BATCH
        assert db.execute("SELECT count(*) FROM dpop_replay").fetchone() == (2 * PURGE_BATCH + 1,)
    await cache.aclose()


async def test_proofs_waiting_on_a_held_lock_get_their_answer_within_the_budget(tmp_path) -> None:
    # The runner has one thread: without the budget each call queued behind a blocked
    # one would wait its own busy timeout too, and the fifth request 5 x as long.
    cache = SQLiteReplayCache(tmp_path / FILE_NAME, timeout=0.2)
    assert await cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    holder = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    uses = [cache.first_use(JKT, f"b{n}", expires_at=NOW + 60, now=NOW) for n in range(5)]
    answers = await asyncio.gather(*uses, return_exceptions=True)
    elapsed = time.monotonic() - started
    holder.execute("ROLLBACK")
    holder.close()
    assert all(isinstance(answer, BackendUnavailable) for answer in answers), answers
    assert elapsed < 0.7
    await cache.aclose()


RACE = """
import asyncio, random, sys
from pathlib import Path
from backends.dpop.replay_sqlite import SQLiteReplayCache

async def race() -> None:
    cache = SQLiteReplayCache(Path(sys.argv[1]))
    await cache.first_use("j" * 43, sys.argv[3], expires_at=2e9, now=1.7e9)  # the file is open
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start together
    ids = list(range(int(sys.argv[2])))
    random.Random(sys.argv[3]).shuffle(ids)  # each its own order: they meet all along
    won = [n for n in ids if await cache.first_use("j" * 43, str(n), expires_at=2e9, now=1.7e9)]
    await cache.aclose()
    print(" ".join(map(str, won)))

asyncio.run(race())
"""


@pytest.mark.slow
def test_two_processes_spending_the_same_proofs_each_pass_a_proof_once(tmp_path) -> None:
    # Both create the file at once, then race for every one of the same proof ids.
    count = 1000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", RACE, str(tmp_path / FILE_NAME), str(count)]
    racers = [
        subprocess.Popen([*args, f"warm-up {n}"], env=env, stdin=PIPE, stdout=PIPE, text=True)
        for n in range(2)
    ]
    for racer in racers:
        assert racer.stdout is not None
        assert racer.stdout.readline() == "ready\n"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    won = [set(map(int, racer.communicate(timeout=60)[0].split())) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert not won[0] & won[1]
    assert won[0] | won[1] == set(range(count))
    assert won[0], "one process finished before the other began: no race"
    assert won[1], "one process finished before the other began: no race"
