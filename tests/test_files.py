"""Files written whole or not at all (dse.files.publish)."""

import pytest

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
