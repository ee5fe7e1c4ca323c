"""Files written whole or not at all (dse.files.publish)."""

from pathlib import Path

import pytest

from dse.errors import ConfigError
from dse.files import publish, publish_with


def _left_over(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_text_and_bytes_are_written_and_nothing_is_left_beside_them(tmp_path):
    text_path = publish(tmp_path / "config.yaml", "epochs: 3\nname: é\n")
    assert text_path == tmp_path / "config.yaml"
    assert text_path.read_text(encoding="utf-8") == "epochs: 3\nname: é\n"
    bytes_path = publish(tmp_path / "record.json.gz", b"\x1f\x8b\x00\x01")
    assert bytes_path.read_bytes() == b"\x1f\x8b\x00\x01"
    publish(text_path, "epochs: 4\n")  # over an existing file
    assert text_path.read_text() == "epochs: 4\n"
    assert _left_over(tmp_path) == []


def test_a_write_that_fails_leaves_the_previous_file_whole(tmp_path):
    path = publish(tmp_path / "calibration.json", '{"runs": 5}\n')
    with pytest.raises(UnicodeEncodeError):  # fails while the temporary file is written
        publish(path, '{"runs": 6, "note": "\udc80"}\n')
    assert path.read_text() == '{"runs": 5}\n'
    assert _left_over(tmp_path) == []


def test_a_folder_that_is_not_there_is_the_callers_to_make(tmp_path):
    with pytest.raises(FileNotFoundError):
        publish(tmp_path / "missing" / "out.yaml", "x: 1\n")
    assert not (tmp_path / "missing").exists()


def test_a_library_writing_by_file_name_writes_whole_or_not_at_all(tmp_path):
    """publish_with: the writer (a profiler's trace export, say) gets the temporary path."""
    path = publish_with(tmp_path / "trace.json", lambda p: p.write_text('{"events": []}'))
    assert path.read_text() == '{"events": []}'

    def cut_short(partial):
        partial.write_text('{"events": [')  # half written, then the writer fails
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        publish_with(path, cut_short)
    assert path.read_text() == '{"events": []}'
    assert _left_over(tmp_path) == []


def test_a_link_is_written_through_and_a_device_is_refused(tmp_path):
    """Renamed over, a symbolic link would become a plain file and its target keep the old
    content; /dev/null would become a file too (as root)."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "config.yaml"
    target.write_text("epochs: 1\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert publish(link, "epochs: 2\n") == link
    assert link.is_symlink() and target.read_text() == "epochs: 2\n"
    assert _left_over(tmp_path) == [] and _left_over(tmp_path / "real") == []
    with pytest.raises(ConfigError, match="/dev/null: not a regular file"):
        publish("/dev/null", "epochs: 3\n")
    assert Path("/dev/null").is_char_device()
