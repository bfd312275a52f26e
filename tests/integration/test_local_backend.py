"""The local backend: a store folder and SQLite queues, on real files and a real database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotranscode import keys
from autotranscode import settings as settings_mod
from autotranscode.backends.base import Received
from autotranscode.backends.doorbell import Doorbells
from autotranscode.backends.local import FolderStore, LocalBackend, SqliteQueue
from autotranscode.errors import StorageError

#: Generous: how long a cross-process wake-up may take (it takes milliseconds).
WAIT = 60


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def backend(state: Path) -> Iterator[LocalBackend]:
    b = LocalBackend(state, visibility=60, max_attempts=3)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def store(backend: LocalBackend) -> FolderStore:
    assert isinstance(backend.store, FolderStore)
    return backend.store


@pytest.fixture
def source(tmp_path: Path) -> Path:
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / "Früh stück — 東京 clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    return path


def _queue(backend: LocalBackend, name: str = "jobs") -> SqliteQueue:
    queue = {"jobs": backend.jobs, "jobs-dlq": backend.dead_letters}[name]
    assert isinstance(queue, SqliteQueue)
    return queue


# --- wiring --------------------------------------------------------------------------------------


def test_from_settings_lays_out_the_state_dir(tmp_path: Path) -> None:
    settings = settings_mod.build({"state_dir": tmp_path / "st", "max_attempts": 4})
    backend = LocalBackend.from_settings(settings)
    try:
        assert backend.kind == "local"
        assert (tmp_path / "st" / "queues.db").is_file()
        assert backend.jobs.name == "jobs"
        assert backend.dead_letters.name == "jobs-dlq"
        assert backend.notifications.name == "notifications"
        # Every configured attempt is delivered before the redrive (the worker may take one
        # more receive to report the failure itself; SQS's redrive is the backstop).
        jobs = _queue(backend)
        assert jobs.max_receives is not None and jobs.max_receives >= 4
        assert jobs.dead_letters == "jobs-dlq"
        assert _queue(backend).visibility == settings.visibility_timeout
        assert backend.topic.arn == f"local:{tmp_path / 'st'}"
        assert backend.open_notification('{"x": 1}') == '{"x": 1}'
    finally:
        backend.close()


def test_unusable_state_dir_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(StorageError, match="state dir"):
        LocalBackend(blocker / "state", visibility=60, max_attempts=3)


def test_topic_delivers_to_the_notification_queue(backend: LocalBackend) -> None:
    backend.topic.publish('{"state": "COMPLETED"}')
    got = backend.notifications.receive(wait=0)
    assert [m.body for m in got] == ['{"state": "COMPLETED"}']
    assert backend.jobs.count() == 0


# --- store ---------------------------------------------------------------------------------------


def test_upload_is_a_snapshot_that_a_later_rewrite_leaves_alone(
    store: FolderStore, source: Path
) -> None:
    """A copy (a reflink where it can be), never a hard link: the source written in place
    after it was taken must not change the job's input."""
    before = source.stat()
    content = source.read_bytes()
    moved: list[int] = []
    key = f"inputs/abc/{source.name}"
    digest = store.take(source, store.input_bucket, key, progress=moved.append)

    stored = store.root / store.input_bucket / key
    assert stored.stat().st_ino != source.stat().st_ino
    assert digest == keys.content_hash(source)
    with source.open("r+b") as fh:  # rewritten in place, as `cp other source` does
        fh.write(b"X" * 64)
    assert stored.read_bytes() == content
    assert keys.content_hash(stored) == digest
    source.write_bytes(content)
    assert source.exists()
    assert source.read_bytes() == content
    assert source.stat().st_size == before.st_size
    assert sum(moved) == len(content)
    assert store.size(store.input_bucket, key) == len(content)
    assert store.keys(store.input_bucket) == [key]


def test_upload_again_replaces_the_object(store: FolderStore, source: Path, tmp_path: Path) -> None:
    key = "inputs/abc/clip.mp4"
    store.upload(source, store.input_bucket, key)
    other = tmp_path / "other.mp4"
    other.write_bytes(b"second version")
    store.upload(other, store.input_bucket, key)
    assert (store.root / store.input_bucket / key).read_bytes() == b"second version"
    assert source.read_bytes() != b"second version"


def test_upload_of_a_missing_file_is_a_storage_error(store: FolderStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"gone\.mp4"):
        store.upload(tmp_path / "gone.mp4", store.input_bucket, "inputs/a/gone.mp4")


def test_put_moves_the_file_in(store: FolderStore, tmp_path: Path) -> None:
    produced = tmp_path / "work" / "out.mp4"
    produced.parent.mkdir()
    produced.write_bytes(b"transcoded")
    key = "outputs/job-1/clip.web-720p.mp4"
    store.put(produced, store.output_bucket, key)
    assert not produced.exists()
    assert (store.root / store.output_bucket / key).read_bytes() == b"transcoded"
    assert store.keys(store.output_bucket) == [key]


def test_download_writes_dest(store: FolderStore, source: Path, tmp_path: Path) -> None:
    key = "inputs/abc/clip.mp4"
    store.upload(source, store.input_bucket, key)
    dest = tmp_path / "done" / ".clip.mp4.autotranscode-part"
    dest.parent.mkdir()
    moved: list[int] = []
    store.download(store.input_bucket, key, dest, progress=moved.append)
    assert dest.read_bytes() == source.read_bytes()
    assert sum(moved) == source.stat().st_size
    # The object stays until it is deleted.
    assert store.keys(store.input_bucket) == [key]


def test_download_of_a_missing_object_is_a_storage_error(
    store: FolderStore, tmp_path: Path
) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        store.download(store.output_bucket, "outputs/job-1/nope.mp4", tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_local_path_yields_the_store_path(store: FolderStore, source: Path, tmp_path: Path) -> None:
    key = "inputs/abc/clip.mp4"
    store.upload(source, store.input_bucket, key)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with store.local_path(store.input_bucket, key, workdir) as path:
        assert path == (store.root / store.input_bucket / key).resolve()
        assert path.read_bytes() == source.read_bytes()
    assert list(workdir.iterdir()) == []  # nothing was copied
    with (
        pytest.raises(StorageError, match="does not exist"),
        store.local_path(store.input_bucket, "inputs/abc/nope.mp4", workdir),
    ):
        pass


def test_size_of_a_missing_object_is_a_storage_error(store: FolderStore) -> None:
    with pytest.raises(StorageError):
        store.size(store.input_bucket, "inputs/x/y.mp4")


def test_keys_lists_sorted_by_prefix_per_bucket(store: FolderStore, source: Path) -> None:
    assert store.keys(store.input_bucket) == []
    for key in ("inputs/b/2.mp4", "inputs/a/1.mp4", "inputs/a/sub/3.mp4"):
        store.upload(source, store.input_bucket, key)
    store.upload(source, store.output_bucket, "outputs/j/1.mp4")
    assert store.keys(store.input_bucket) == [
        "inputs/a/1.mp4",
        "inputs/a/sub/3.mp4",
        "inputs/b/2.mp4",
    ]
    assert store.keys(store.input_bucket, "inputs/a/") == ["inputs/a/1.mp4", "inputs/a/sub/3.mp4"]
    assert store.keys(store.input_bucket, "inputs/c/") == []
    assert store.keys(store.input_bucket, "inputs/c/d/") == []
    assert store.keys(store.output_bucket) == ["outputs/j/1.mp4"]
    store.upload(source, store.input_bucket, "inputs/ab/4.mp4")
    # A prefix is a string prefix, as on S3, not a folder.
    assert store.keys(store.input_bucket, "inputs/a") == [
        "inputs/a/1.mp4",
        "inputs/a/sub/3.mp4",
        "inputs/ab/4.mp4",
    ]
    assert store.keys(store.input_bucket, "inp") == store.keys(store.input_bucket)
    with pytest.raises(StorageError, match="escapes"):
        store.keys(store.input_bucket, "../../")


def test_a_store_under_a_relative_path_works(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = FolderStore(Path("state/store"))
    store.upload(source, store.input_bucket, "inputs/a/1.mp4")
    assert store.keys(store.input_bucket, "inputs/a/") == ["inputs/a/1.mp4"]
    assert store.size(store.input_bucket, "inputs/a/1.mp4") == source.stat().st_size
    assert store.delete_prefix(store.input_bucket, "inputs/") == 1
    assert store.keys(store.input_bucket) == []


def test_delete_prefix_removes_files_and_empty_dirs(store: FolderStore, source: Path) -> None:
    for key in ("inputs/a/1.mp4", "inputs/a/sub/deep/2.mp4", "inputs/b/3.mp4"):
        store.upload(source, store.input_bucket, key)
    assert store.delete_prefix(store.input_bucket, "inputs/a/") == 2
    assert store.keys(store.input_bucket) == ["inputs/b/3.mp4"]
    base = store.root / store.input_bucket
    assert not (base / "inputs" / "a").exists()
    assert (base / "inputs" / "b").is_dir()
    assert base.is_dir()
    assert source.exists()  # only the store's link went
    assert store.delete_prefix(store.input_bucket, "inputs/a/") == 0
    assert store.delete_prefix(store.input_bucket, "") == 1
    assert store.keys(store.input_bucket) == []
    assert base.is_dir()
    assert list(base.iterdir()) == []


@pytest.mark.parametrize("key", ["../escape.mp4", "inputs/../../escape.mp4", "/etc/passwd"])
def test_keys_cannot_escape_the_store(store: FolderStore, source: Path, key: str) -> None:
    with pytest.raises(StorageError, match="escapes"):
        store.upload(source, store.input_bucket, key)
    assert not (store.root / "escape.mp4").exists()


# --- queues --------------------------------------------------------------------------------------


def test_send_receive_delete_count(backend: LocalBackend) -> None:
    jobs = backend.jobs
    assert jobs.receive(wait=0) == []
    for i in range(3):
        jobs.send(f"job {i}")
    assert jobs.count() == 3
    first = jobs.receive(wait=0)
    assert [m.body for m in first] == ["job 0"]  # first in, first out
    assert first[0].receive_count == 1
    rest = jobs.receive(wait=0, max_messages=10)
    assert [m.body for m in rest] == ["job 1", "job 2"]
    assert jobs.count() == 3  # leased messages still count
    for message in first + rest:
        jobs.delete(message)
    assert jobs.count() == 0
    assert jobs.receive(wait=0) == []
    assert backend.notifications.count() == 0


def test_queues_are_separate(backend: LocalBackend) -> None:
    backend.jobs.send("a job")
    backend.notifications.send("a notification")
    assert [m.body for m in backend.notifications.receive(wait=0, max_messages=5)] == [
        "a notification"
    ]
    assert [m.body for m in backend.jobs.receive(wait=0, max_messages=5)] == ["a job"]
    assert backend.dead_letters.receive(wait=0) == []


def test_receive_hides_the_message_and_release_brings_it_back(backend: LocalBackend) -> None:
    backend.jobs.send("the job")
    [first] = backend.jobs.receive(wait=0)
    assert backend.jobs.receive(wait=0) == []  # leased: invisible to others
    backend.jobs.release(first)
    [again] = backend.jobs.receive(wait=0)
    assert again.body == "the job"
    assert again.receive_count == 2
    assert again.receipt != first.receipt


def test_lease_expires_by_itself(state: Path) -> None:
    backend = LocalBackend(state, visibility=0.3, max_attempts=5)
    try:
        backend.jobs.send("short lease")
        assert len(backend.jobs.receive(wait=0)) == 1
        assert backend.jobs.receive(wait=0) == []
        again = backend.jobs.receive(wait=5)
        assert [(m.body, m.receive_count) for m in again] == [("short lease", 2)]
    finally:
        backend.close()


def test_extend_keeps_the_message_hidden(state: Path) -> None:
    backend = LocalBackend(state, visibility=0.2, max_attempts=5)
    try:
        backend.jobs.send("long job")
        [message] = backend.jobs.receive(wait=0)
        backend.jobs.extend(message, 30)
        time.sleep(0.4)  # twice the original lease
        assert backend.jobs.receive(wait=0) == []
        backend.jobs.extend(message, 0)
        assert [m.body for m in backend.jobs.receive(wait=0)] == ["long job"]
    finally:
        backend.close()


def test_stale_receipt_cannot_delete_or_release(state: Path) -> None:
    """After a lease ran out and another consumer took the message, the old receipt is void."""
    backend = LocalBackend(state, visibility=0.2, max_attempts=5)
    try:
        backend.jobs.send("contested")
        [old] = backend.jobs.receive(wait=0)
        [new] = backend.jobs.receive(wait=5)
        backend.jobs.delete(old)
        backend.jobs.release(old)
        assert backend.jobs.count() == 1
        assert backend.jobs.receive(wait=0) == []  # still leased by the new holder
        backend.jobs.delete(new)
        assert backend.jobs.count() == 0
    finally:
        backend.close()


def test_redrive_to_dead_letters_after_max_receives(backend: LocalBackend) -> None:
    limit = _queue(backend).max_receives
    assert limit is not None and limit >= 3  # the backend's max_attempts
    backend.jobs.send("poison")
    backend.jobs.send("fine")
    counts = []
    for _ in range(limit):
        got = backend.jobs.receive(wait=0)
        assert [m.body for m in got] == ["poison"]
        counts.append(got[0].receive_count)
        backend.jobs.release(got[0])
    assert counts == list(range(1, limit + 1))
    # The next receive moves it to the dead-letter queue instead of handing it out.
    got = backend.jobs.receive(wait=0)
    assert [m.body for m in got] == ["fine"]
    assert backend.jobs.count() == 1
    dead = backend.dead_letters.receive(wait=0)
    assert [(m.body, m.receive_count) for m in dead] == [("poison", 1)]
    assert backend.dead_letters.count() == 1


def test_queue_redrives_after_exactly_max_receives(backend: LocalBackend) -> None:
    queue = SqliteQueue(backend.db, "q", 60, max_receives=2, dead_letters="q-dlq")
    dead = SqliteQueue(backend.db, "q-dlq", 60)
    queue.send("twice")
    for expected in (1, 2):
        [message] = queue.receive(wait=0)
        assert message.receive_count == expected
        queue.release(message)
    assert queue.receive(wait=0) == []
    assert (queue.count(), dead.count()) == (0, 1)
    assert [m.body for m in dead.receive(wait=0)] == ["twice"]


def test_a_leased_message_is_not_redriven(backend: LocalBackend) -> None:
    limit = _queue(backend).max_receives
    assert limit is not None
    backend.jobs.send("slow")
    for _ in range(limit - 1):
        backend.jobs.release(backend.jobs.receive(wait=0)[0])
    [last] = backend.jobs.receive(wait=0)  # the last attempt, still running
    assert last.receive_count == limit
    assert backend.jobs.receive(wait=0) == []
    assert backend.dead_letters.count() == 0
    backend.jobs.delete(last)  # it succeeded after all
    assert backend.jobs.count() == 0
    assert backend.dead_letters.count() == 0


def test_waiting_receive_wakes_when_a_message_arrives(backend: LocalBackend) -> None:
    timer = threading.Timer(0.3, backend.jobs.send, args=("late",))
    timer.start()
    try:
        got = backend.jobs.receive(wait=10)
    finally:
        timer.cancel()
        timer.join()
    assert [m.body for m in got] == ["late"]


def test_receive_with_cancel_set_returns_promptly(backend: LocalBackend) -> None:
    cancel = threading.Event()
    cancel.set()
    started = time.monotonic()
    assert backend.jobs.receive(wait=30, cancel=cancel) == []
    assert time.monotonic() - started < 5


def test_cancel_ends_a_waiting_receive(backend: LocalBackend) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        assert backend.jobs.receive(wait=30, cancel=cancel) == []
    finally:
        timer.join()
    assert time.monotonic() - started < 10


def test_cancelled_receive_still_takes_a_waiting_message(backend: LocalBackend) -> None:
    backend.jobs.send("ready")
    cancel = threading.Event()
    cancel.set()
    assert [m.body for m in backend.jobs.receive(wait=30, cancel=cancel)] == ["ready"]


def test_two_backends_on_one_state_dir_share_the_queues(state: Path) -> None:
    """Like ``run`` and ``worker`` in two processes: one queue, each message to one consumer."""
    first = LocalBackend(state, visibility=60, max_attempts=3)
    second = LocalBackend(state, visibility=60, max_attempts=3)
    total = 60
    try:
        for i in range(total):
            (first if i % 2 else second).jobs.send(f"m{i:03d}")
        assert first.jobs.count() == second.jobs.count() == total

        received: list[list[Received]] = [[] for _ in range(6)]
        errors: list[BaseException] = []
        start = threading.Barrier(len(received))

        def consume(slot: int) -> None:
            queue = (first if slot % 2 else second).jobs
            try:
                start.wait()
                while True:
                    got = queue.receive(wait=0.2, max_messages=1 + slot % 3)
                    if not got:
                        return
                    received[slot].extend(got)
                    time.sleep(0.01)  # "work" on it, as a consumer would
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(received))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        bodies = Counter(m.body for got in received for m in got)
        assert sum(bodies.values()) == total
        assert set(bodies) == {f"m{i:03d}" for i in range(total)}
        assert max(bodies.values()) == 1  # never received twice while leased
        assert sum(1 for got in received if got) >= 2  # the work was actually shared
        # Either backend can settle a message the other received.
        for slot, got in enumerate(received):
            queue = (second if slot % 2 else first).jobs
            for message in got:
                queue.delete(message)
        assert first.jobs.count() == second.jobs.count() == 0
    finally:
        first.close()
        second.close()


# --- doorbells: waking receivers in other processes ----------------------------------------------

_SEND_FROM_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from autotranscode.backends.local import LocalBackend
backend = LocalBackend(Path(sys.argv[1]), visibility=60, max_attempts=3)
backend.jobs.send(sys.argv[2])
backend.close()
"""


def _send_from_another_process(state: Path, body: str) -> None:
    subprocess.run([sys.executable, "-c", _SEND_FROM_ANOTHER_PROCESS, str(state), body], check=True)


def test_a_send_in_another_process_rings_this_ones_doorbell(state: Path) -> None:
    """Receivers sleep (1 s between looks) until rung: the ring must come from the sender."""
    rung = threading.Event()
    doorbells = Doorbells(state / "doorbells", rung.set)
    try:
        assert doorbells.listen()
        _send_from_another_process(state, "from afar")
        assert rung.wait(WAIT), "the other process's send did not ring"
    finally:
        doorbells.close()


def test_a_backend_s_doorbell_rings_its_receivers(backend: LocalBackend, state: Path) -> None:
    """A ring from another process wakes this backend's receivers of every queue (the
    doorbell does not say which queue), and they find the message."""
    bells = [backend.bells.of(q) for q in ("jobs", "notifications")]
    before = [b.rings for b in bells]
    assert backend.doorbells.listen()
    _send_from_another_process(state, "from afar")
    for bell, then in zip(bells, before, strict=True):
        with bell.cond:
            assert bell.cond.wait_for(lambda b=bell, t=then: b.rings > t, timeout=WAIT)
    assert [m.body for m in backend.jobs.receive(wait=0)] == ["from afar"]


def test_backends_on_other_state_dirs_do_not_wake_each_other(tmp_path: Path) -> None:
    """Each backend owns its bells: a send wakes the receivers of its own state dir only."""
    first = LocalBackend(tmp_path / "first", visibility=60, max_attempts=3)
    second = LocalBackend(tmp_path / "second", visibility=60, max_attempts=3)
    try:
        assert first.doorbells.listen() and second.doorbells.listen()
        ours, theirs = first.bells.of("jobs"), second.bells.of("jobs")
        assert ours is not theirs
        first.jobs.send("for the first")
        assert (ours.rings, theirs.rings) == (1, 0)
        assert second.jobs.receive(wait=0) == []
    finally:
        first.close()
        second.close()


def test_backends_on_one_state_dir_in_one_process_wake_each_other(state: Path) -> None:
    """Like a client and a worker service that each open the state dir: the other backend's
    receivers are rung through its doorbell, as another process's would be."""
    sender = LocalBackend(state, visibility=60, max_attempts=3)
    receiver = LocalBackend(state, visibility=60, max_attempts=3)
    try:
        bell = receiver.bells.of("jobs")
        assert receiver.doorbells.listen()
        got: list[Received] = []
        waiting = threading.Thread(target=lambda: got.extend(receiver.jobs.receive(wait=WAIT)))
        waiting.start()
        sender.jobs.send("next door")
        with bell.cond:
            assert bell.cond.wait_for(lambda: bell.rings > 0, timeout=WAIT)
        waiting.join()
        assert [m.body for m in got] == ["next door"]
        assert sender.bells.of("jobs").rings == 1  # its own receivers, rung directly
    finally:
        sender.close()
        receiver.close()


def test_a_dead_process_doorbell_is_cleared_by_the_next_send(
    backend: LocalBackend, state: Path
) -> None:
    folder = state / "doorbells"
    folder.mkdir(exist_ok=True)
    dead = folder / "999999999-gone"
    os.mkfifo(dead)
    backend.jobs.send("hello")
    assert not dead.exists()


def test_closing_takes_the_doorbell_down(state: Path) -> None:
    backend = LocalBackend(state, visibility=60, max_attempts=3)
    assert backend.doorbells.listen()
    assert len(list((state / "doorbells").iterdir())) == 1
    backend.close()
    assert list((state / "doorbells").iterdir()) == []
    # (the conftest's leak check sees to the thread)


def test_where_fifos_cannot_be_made_receivers_poll(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fifos(*args: object, **kwargs: object) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "mkfifo", no_fifos)
    backend = LocalBackend(state, visibility=60, max_attempts=3)
    try:
        assert not backend.doorbells.listen()
        got: list[Received] = []
        receiver = threading.Thread(target=lambda: got.extend(backend.jobs.receive(wait=WAIT)))
        receiver.start()
        monkeypatch.undo()
        _send_from_another_process(state, "found by looking")
        receiver.join()
        assert [m.body for m in got] == ["found by looking"]
    finally:
        backend.close()


# --- interruptions and crashes (issue 13, case 5) ------------------------------------------------


def test_a_hand_back_does_not_count_as_a_receive(backend: LocalBackend) -> None:
    backend.jobs.send("the job")
    for _ in range(5):  # more than max_attempts: never redriven, never counted
        [got] = backend.jobs.receive(wait=0)
        assert got.receive_count == 1
        backend.jobs.hand_back(got)
    assert backend.dead_letters.count() == 0


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def _held_by(backend: LocalBackend, pid: int) -> None:
    """The job's lease as a process that then died left it (its pid in the row)."""
    backend.db.execute("UPDATE messages SET owner = ? WHERE queue = 'jobs'", (pid,))


def test_a_killed_process_s_lease_comes_back_uncounted(backend: LocalBackend) -> None:
    backend.jobs.send("the job")
    assert len(backend.jobs.receive(wait=0)) == 1
    _held_by(backend, _dead_pid())
    [again] = backend.jobs.receive(wait=5)  # dead owners are looked for once a second
    assert (again.receive_count, again.note) == (1, None)


def test_a_crashed_process_s_lease_counts_and_says_why(backend: LocalBackend, state: Path) -> None:
    backend.jobs.send("the job")
    assert len(backend.jobs.receive(wait=0)) == 1
    pid = _dead_pid()
    _held_by(backend, pid)
    record = state / "crashes" / f"{pid}.log"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        "Fatal Python error: Segmentation fault\n\nThread 0x1 (most recent call first):\n"
    )
    [again] = backend.jobs.receive(wait=5)  # dead owners are looked for once a second
    assert again.receive_count == 2
    assert again.note == "the worker crashed (Segmentation fault) while running this job"
    assert not record.exists(), "a claimed record is removed"


def test_dead_letters_keep_their_reason(backend: LocalBackend) -> None:
    backend.dead_letters.send("the job", reason="rejected: not ours")
    [got] = backend.dead_letters.receive(wait=0)
    assert (got.body, got.note) == ("the job", "rejected: not ours")


def test_holds_finds_a_job_by_its_id(backend: LocalBackend) -> None:
    backend.jobs.send('{"jobId":"0123abcd","x":1}')
    assert backend.jobs.holds("0123abcd") is True
    assert backend.jobs.holds("0123abc") is False
    [got] = backend.jobs.receive(wait=0)
    assert backend.jobs.holds("0123abcd") is True, "a leased job is still held"
    backend.jobs.delete(got)
    assert backend.jobs.holds("0123abcd") is False
