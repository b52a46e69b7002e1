"""Dataset readers on small fixture files written in the real distribution formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host_training.datasets import (
    ASVSPOOF5,
    ASVSPOOF2019,
    ASVSPOOF2021_DF,
    ASVSPOOF2021_LA,
    DatasetError,
    detect_format,
    load_split,
    read_asvspoof2019,
    read_folders,
    read_protocol,
    summarize,
)

# Lines as the distributions write them (ids shortened to a handful per file).
LA2019 = """\
LA_0079 LA_T_1138215 - - bonafide
LA_0079 LA_T_1271820 - A01 spoof
LA_0080 LA_T_1340101 - A06 spoof
"""
PA2019 = """\
PA_0079 PA_T_0000001 aaa - bonafide
PA_0079 PA_T_0000004 aaa AA spoof
"""
LA2021 = """\
LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval
LA_0020 LA_E_7294490 g722 loc_tx bonafide bonafide notrim eval
LA_0021 LA_E_1000048 opus loc_tx A08 spoof notrim progress
LA_0005 LA_E_1000381 ulaw sin_tx A16 spoof only_speech hidden
"""
DF2021 = """\
LA_0043 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -
TEF2 DF_E_2000013 low_m4a vcc2020 Task1-team20 spoof notrim eval neural_vocoder_nonautoregressive Task1 team20 FF E
LA_0031 DF_E_2000049 mp3m4a asvspoof bonafide bonafide notrim eval - - - - -
"""  # noqa: E501
ASV5 = """\
T_4850 T_0000000000 F - - - AC3 A05 spoof -
T_3734 T_0000000011 F - - - - bonafide bonafide -
E_4608 E_0000000024 M C11 4 E_0004890277 AC1 A24 spoof -
"""


def _ids(text: str) -> list[str]:
    """The utterance id of each line (the only column of a trial list, else the second)."""
    return [line.split()[min(1, len(line.split()) - 1)] for line in text.splitlines()
            if line.strip()]


def _write_clips(folder: Path, ids: list[str], suffix: str = ".flac") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for utt in ids:
        sf.write(folder / f"{utt}{suffix}", (0.1 * rng.standard_normal(1600)).astype(np.float32),
                 16000)


def _protocol(tmp_path: Path, name: str, text: str, suffix: str = ".flac") -> tuple[Path, Path]:
    path = tmp_path / name
    path.write_text(text)
    audio = tmp_path / "audio"
    _write_clips(audio, _ids(text), suffix)
    return path, audio


def test_asvspoof2019_la(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "ASVspoof2019.LA.cm.train.trn.txt", LA2019)
    utts = read_protocol(path, audio)
    assert [(u.speaker, u.key, u.system) for u in utts] == [
        ("LA_0079", "bonafide", "-"), ("LA_0079", "spoof", "A01"), ("LA_0080", "spoof", "A06")]
    assert utts[1].path == audio / "LA_T_1271820.flac" and utts[1].path.exists()
    assert read_asvspoof2019(path, audio) == utts


def test_asvspoof2019_pa_keeps_environment_as_condition(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "pa.txt", PA2019, suffix=".wav")
    utts = read_protocol(path, audio)
    assert [u.condition for u in utts] == ["aaa", "aaa"]
    assert utts[0].path.suffix == ".wav"


def test_asvspoof2021_la_key(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "trial_metadata.txt", LA2021)
    utts = read_protocol(path, audio)
    assert [u.system for u in utts] == ["A07", "-", "A08", "A16"]
    assert [u.key for u in utts] == ["spoof", "bonafide", "spoof", "spoof"]
    assert utts[0].condition == "alaw/ita_tx"
    evaluation = read_protocol(path, audio, subset="eval")
    assert [u.path.stem for u in evaluation] == ["LA_E_9332881", "LA_E_7294490"]


def test_asvspoof2021_df_key(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "trial_metadata.txt", DF2021)
    utts = read_protocol(path, audio)
    assert [(u.speaker, u.system, u.key, u.condition) for u in utts] == [
        ("LA_0043", "A14", "spoof", "nocodec"), ("TEF2", "Task1-team20", "spoof", "low_m4a"),
        ("LA_0031", "-", "bonafide", "mp3m4a")]
    assert len(read_protocol(path, audio, subset="progress")) == 1


def test_asvspoof5(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "ASVspoof5.train.tsv", ASV5)
    utts = read_protocol(path, audio)
    assert [(u.speaker, u.system, u.key, u.condition) for u in utts] == [
        ("T_4850", "A05", "spoof", "-"), ("T_3734", "-", "bonafide", "-"),
        ("E_4608", "A24", "spoof", "C11/4")]


@pytest.mark.parametrize(("text", "fmt"), [(LA2019, ASVSPOOF2019), (LA2021, ASVSPOOF2021_LA),
                                           (DF2021, ASVSPOOF2021_DF), (ASV5, ASVSPOOF5)])
def test_detect_format(text: str, fmt: object) -> None:
    assert all(detect_format(line.split()) is fmt for line in text.splitlines())


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    text = LA2021 + "LA_0009 LA_E_1 alaw ita_tx A07 spoof notrim\n"
    path, audio = _protocol(tmp_path, "trial_metadata.txt", text)
    with pytest.raises(DatasetError, match=r"trial_metadata\.txt:5: expected 8 columns"):
        read_protocol(path, audio)


def test_bad_key_names_file_and_line(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "p.txt", LA2019 + "LA_0079 LA_T_9 - A01 fake\n")
    with pytest.raises(DatasetError, match=r"p\.txt:4: key column is 'fake'"):
        read_protocol(path, audio)


def test_unknown_first_line(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "p.txt", "a b c\n")
    with pytest.raises(DatasetError, match=r"p\.txt:1: unrecognised protocol line"):
        read_protocol(path, audio)


def test_trial_list_without_keys_is_explained(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "ASVspoof2021.LA.cm.eval.trl.txt", "LA_E_9332881\n")
    with pytest.raises(DatasetError, match="without keys"):
        read_protocol(path, audio)


def test_missing_audio_is_reported(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "p.txt", LA2019)
    (audio / "LA_T_1271820.flac").unlink()
    with pytest.raises(DatasetError, match=r"p\.txt:2: 1 of 3 audio files not found"):
        read_protocol(path, audio)


def test_subset_on_format_without_phase(tmp_path: Path) -> None:
    path, audio = _protocol(tmp_path, "p.txt", LA2019)
    with pytest.raises(DatasetError, match="no phase column"):
        read_protocol(path, audio, subset="eval")


def test_missing_protocol(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="protocol not found"):
        read_protocol(tmp_path / "nope.txt", tmp_path)


def test_corpus_layout_accepts_any_format(tmp_path: Path) -> None:
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "train.txt").write_text(ASV5)
    _write_clips(tmp_path / "train" / "flac", _ids(ASV5))
    utts = load_split(tmp_path, "train")
    assert summarize(utts) == {"files": 3, "bonafide": 1, "spoof": 2,
                               "systems": {"A05": 1, "A24": 1}}


def test_asvspoof2019_distribution_layout(tmp_path: Path) -> None:
    protocols = tmp_path / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir()
    (protocols / "ASVspoof2019.LA.cm.dev.trl.txt").write_text(LA2019)
    _write_clips(tmp_path / "ASVspoof2019_LA_dev" / "flac", _ids(LA2019))
    assert len(load_split(tmp_path, "dev")) == 3


def test_asvspoof5_distribution_layout(tmp_path: Path) -> None:
    (tmp_path / "ASVspoof5_protocols").mkdir()
    (tmp_path / "ASVspoof5_protocols" / "ASVspoof5.train.tsv").write_text(ASV5)
    _write_clips(tmp_path / "flac_T", _ids(ASV5))
    assert [u.path.parent.name for u in load_split(tmp_path, "train")] == ["flac_T"] * 3


def test_asvspoof2021_distribution_layout(tmp_path: Path) -> None:
    _write_clips(tmp_path / "ASVspoof2021_LA_eval" / "flac", _ids(LA2021))
    with pytest.raises(DatasetError, match="no key file"):
        load_split(tmp_path, "eval")
    keys = tmp_path / "LA-keys-full" / "keys" / "LA" / "CM"
    keys.mkdir(parents=True)
    (keys / "trial_metadata.txt").write_text(LA2021)
    assert len(load_split(tmp_path, "eval")) == 2
    assert len(load_split(tmp_path, "hidden")) == 1


def test_folders(tmp_path: Path) -> None:
    _write_clips(tmp_path / "bonafide", ["a", "b"], ".wav")
    _write_clips(tmp_path / "spoof" / "tts_x", ["c"], ".wav")
    _write_clips(tmp_path / "spoof", ["d"], ".wav")
    utts = read_folders(tmp_path)
    assert sorted((u.key, u.system) for u in utts) == [
        ("bonafide", "-"), ("bonafide", "-"), ("spoof", "tts_x"), ("spoof", "unknown")]
    with pytest.raises(DatasetError, match="no audio"):
        read_folders(tmp_path / "bonafide")
