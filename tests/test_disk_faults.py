"""A full disk and a folder that turns read-only: a clear error naming the file, the previous file
intact, no half-written leftovers, and a batch that reports the items it could not write."""

from __future__ import annotations

import errno
import os
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from nst_plugin import WriteError
from nst_plugin.cli import main
from nst_plugin.engine.atomic import atomic_path
from nst_plugin.images import Picture, load_image, save_image
from nst_plugin_hosts.pipeline import Reporter, load_pipeline, run_pipeline
from tests.conftest import make_image

PIPELINE = """
    steps:
      - id: stylize
        task: nst.style_transfer
        params: {method: fast, model: starry_night, size: 0}
        inputs: {content: photos}
      - id: save
        task: image.save
        params: {name: "{stem}.png"}
        inputs: {image: stylize.image}
"""


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, good_saves: int, code: int) -> None:
    """PIL's save works `good_saves` times, then writes half a file and fails as the OS would."""
    real = Image.Image.save
    calls = {"n": 0}

    def save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= good_saves:
            return real(self, fp, *args, **kwargs)
        Path(fp).write_bytes(b"\x89PNG half a file")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Image.Image, "save", save)


def leftovers(folder: Path) -> list[Path]:
    return list(folder.rglob(".*.part"))


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EDQUOT, "the disk quota is used up"),
        (errno.EROFS, "the filesystem is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_failed_write_names_the_file_and_keeps_the_previous_one(tmp_path, code, reason):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"the previous, complete file")
    with pytest.raises(WriteError) as exc, atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"half")
        raise OSError(code, os.strerror(code))
    assert str(exc.value) == f"cannot write {target}: {reason} (the existing file is unchanged)"
    assert target.read_bytes() == b"the previous, complete file"
    assert not leftovers(tmp_path)


def test_other_os_errors_are_not_disguised(tmp_path):
    with pytest.raises(IsADirectoryError), atomic_path(tmp_path / "x.png"):
        raise IsADirectoryError(errno.EISDIR, "is a directory")


def test_cli_stylize_on_a_full_disk_is_one_line_and_keeps_the_old_result(
    tmp_path, monkeypatch, capsys
):
    photo = save_image(Picture(make_image(40, 48, "photo")), tmp_path / "photo.png")
    out = tmp_path / "out.png"
    out.write_bytes(b"last week's result")
    fill_disk_after(monkeypatch, 0, errno.ENOSPC)
    args = ["stylize", str(photo), "-o", str(out), "--overwrite", "--quiet"]
    code = main([*args, "--method", "fast", "--model", "starry_night"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert (
        err == f"nst: error: cannot write {out}: the disk is full (the existing file is unchanged)"
    )
    assert out.read_bytes() == b"last week's result"
    assert not leftovers(tmp_path)


def workspace(root: Path, count: int) -> Path:
    photos = root / "photos"
    photos.mkdir(parents=True)
    for i in range(count):
        save_image(Picture(make_image(40, 48, "photo", i)), photos / f"p{i}.png")
    (root / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    return root / "p.yaml"


def test_a_batch_on_a_disk_that_fills_up_reports_each_item_it_could_not_write(
    tmp_path, monkeypatch
):
    path = workspace(tmp_path, 5)
    out = tmp_path / "out"
    fill_disk_after(monkeypatch, 2, errno.ENOSPC)
    summary = run_pipeline(load_pipeline(path, out=out))
    assert summary.exit_code == 1
    assert summary.count("done") == 2 and len(summary.failures) == 3
    for r in summary.failures:
        assert r.error == (
            f"step 'save' (image.save): cannot write {out / r.item.file.name}: the disk is full"
        )
    text = summary.text()
    assert "2 done, 0 skipped (up to date), 3 failed" in text and "failed: p4.png" in text
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png"]
    assert all(load_image(p).size == (48, 40) for p in out.glob("*.png"))  # whole images
    assert not leftovers(out)
    monkeypatch.undo()  # space freed: the re-run writes only what is missing
    again = run_pipeline(load_pipeline(path, out=out))
    assert (again.count("done"), again.count("skipped"), again.exit_code) == (3, 2, 0)


@contextmanager
def folder_that_can_turn_read_only(
    folder: Path,
) -> Iterator[tuple[Callable[[], None], Callable[[], None], str]]:
    """A folder, how to make it read-only for real and writable again, and the reason a write
    then fails: a tmpfs remounted read-only where this process may mount (root), else
    permissions (which root would ignore)."""
    folder.mkdir()
    if os.geteuid() != 0:
        try:
            yield (lambda: folder.chmod(0o555)), (lambda: folder.chmod(0o755)), "permission denied"
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)]).returncode:
        pytest.fail("running as root, but cannot mount a tmpfs to make read-only for real")

    def remount(mode: str) -> Callable[[], None]:
        return lambda: subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)

    try:
        yield remount("ro"), remount("rw"), "the filesystem is read-only"
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_folder_turning_read_only_mid_batch_fails_the_rest_and_keeps_what_was_written(
    tmp_path,
):
    path = workspace(tmp_path, 4)
    out = tmp_path / "out"

    class LockAfterFirst(Reporter):
        def __init__(self, lock: Callable[[], None]) -> None:
            self.lock, self.seen = lock, 0

        def item_end(self, result) -> None:
            self.seen += 1
            if self.seen == 1:
                self.lock()

    with folder_that_can_turn_read_only(out) as (lock, unlock, reason):
        summary = run_pipeline(load_pipeline(path, out=out), reporter=LockAfterFirst(lock))
        assert summary.exit_code == 1
        assert summary.count("done") == 1 and len(summary.failures) == 3
        for r in summary.failures:
            assert r.error.endswith(f"cannot write {out / r.item.file.name}: {reason}")
        assert [p.name for p in out.glob("*.png")] == ["p0.png"]
        first = (out / "p0.png").read_bytes()
        assert load_image(out / "p0.png").size == (48, 40)
        unlock()
        again = run_pipeline(load_pipeline(path, out=out))
        assert (again.count("done"), again.count("skipped"), again.exit_code) == (3, 1, 0)
        assert (out / "p0.png").read_bytes() == first
        assert not leftovers(out)
