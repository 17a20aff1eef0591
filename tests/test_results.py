"""The one on-disk format and the one resume path: round trips of every kind, strict refusal of
what does not fit, atomic writes, reuse of saved results, partial runs, nested configs."""

import json
from dataclasses import dataclass

import plotly.graph_objects as go
import pytest
import torch
from safetensors.torch import load_file, save_file

from interp.interventions import RED, AddVector, Edit, EditError, load_edits, save_edits
from interp.interventions.lora import LoRA, LoRAError, load_lora, save_lora
from interp.interventions.steering_vector import SteeringVector
from interp.results import PartialRun, Result, config_from_dict, config_to_dict, reuse_or_run
from interp.storage import FORMAT_VERSION, StorageError, read_record, upgrade_legacy
from interp.training.pid import BiasControl
from interp.training.trainer import TrainConfig


@dataclass(frozen=True)
class Keywords:
    reflection: tuple[str, ...] = ("wait", "hmm")
    transition: tuple[str, ...] = ("alternatively",)


@dataclass(frozen=True)
class ToyConfig:
    seed: int = 0
    layers: tuple[int, ...] = (0, 1)
    pairs: tuple[tuple[int, int], ...] = ((1, 2), (3, 4))
    keywords: Keywords = Keywords()
    fallback: Keywords | None = None
    many: tuple[Keywords, ...] = ()
    names: list[str] | None = None


@dataclass
class ToyResult(Result):
    config_class = ToyConfig

    def figure(self):
        return go.Figure(go.Scatter(y=self.tensors["values"].tolist()))


@dataclass
class OtherResult(ToyResult):
    pass


def toy(seed: int = 0, **config) -> ToyResult:
    return ToyResult(
        config=ToyConfig(seed=seed, **config),
        tensors={"values": torch.arange(4.0) + seed, "layers": torch.tensor([0, 1])},
        tables={"rows": [{"a": 1, "b": "x"}, {"a": 2, "b": None}]},
        meta={"model": "toy-model", "n": 3},
    )


def record_of(folder):
    return json.loads((folder / "interp.json").read_text())


def rewrite(folder, change):
    record = record_of(folder)
    change(record)
    (folder / "interp.json").write_text(json.dumps(record))


# --------------------------------------------------------------------------------------------------
# Round trips


def test_result_round_trip_writes_one_record_and_tensors(tmp_path):
    result = toy(seed=2, fallback=Keywords(("so",), ()), many=(Keywords(),), names=["a"])
    folder = result.save(tmp_path / "r")
    names = {p.name for p in folder.iterdir()} - {"figure.png"}  # png only where kaleido works
    assert names == {"figure.html", "interp.json", "tensors.safetensors"}
    record = record_of(folder)
    assert list(record) == ["kind", "format_version", "config", "meta", "tables"]
    assert record["kind"] == "ToyResult" and record["format_version"] == FORMAT_VERSION
    assert record["config"]["keywords"] == {
        "reflection": ["wait", "hmm"],
        "transition": ["alternatively"],
    }
    loaded = ToyResult.load(folder)
    assert loaded.config == result.config
    assert loaded.config.keywords == Keywords() and loaded.config.fallback == Keywords(("so",), ())
    assert loaded.config.many == (Keywords(),) and loaded.config.names == ["a"]
    assert loaded.config.pairs == ((1, 2), (3, 4))
    assert loaded.tables == result.tables and loaded.meta == result.meta
    assert torch.equal(loaded.tensors["values"], result.tensors["values"])
    assert loaded.layers == [0, 1]


def test_edits_lora_and_vector_round_trip_in_the_same_format(tiny, tmp_path):
    edit_list = [
        Edit("blocks.0.hook_mlp_out", RED.random(32, bias_norm=1.0, scale_std=0.1)),
        Edit("blocks.1.hook_resid_pre", AddVector(torch.randn(32), alpha=-2.0)),
    ]
    save_edits(tmp_path / "edits", edit_list, model="tiny")
    # the recorded name is a label here, not the tiny model's own name
    loaded = load_edits(tmp_path / "edits", tiny, allow_other_model=True)
    assert torch.equal(loaded[0].function.bias, edit_list[0].function.bias)
    assert torch.equal(loaded[1].function.vector, edit_list[1].function.vector)

    lora = LoRA.for_model(tiny, rank=2, alpha=4.0)
    with torch.no_grad():
        for delta in lora.deltas.values():
            delta.up.normal_()
    save_lora(tmp_path / "lora", lora, model="tiny")
    again = load_lora(tmp_path / "lora", tiny)
    for key, value in lora.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)

    counts = {"execution": 3, "reflection": 2, "transition": 1}
    vector = SteeringVector.from_class_stats(
        torch.randn(2, 3, 8), counts, (4, 5), meta={"model": "tiny", "variant": "pooled"}
    )
    vector.save(tmp_path / "vector")
    back = SteeringVector.load(tmp_path / "vector")
    assert torch.equal(back.vectors, vector.vectors) and back.layers == (4, 5)
    assert back.meta == vector.meta and back.counts == vector.counts

    for name, kind in (("edits", "edits"), ("lora", "lora"), ("vector", "steering_vector")):
        folder = tmp_path / name
        assert sorted(p.name for p in folder.iterdir()) == ["interp.json", "tensors.safetensors"]
        record = record_of(folder)
        assert record["kind"] == kind and record["meta"]["model"] == "tiny"
    described = record_of(tmp_path / "vector")["meta"]["description"]
    assert described["sign"] == "mean(execution) - mean(reflection+transition)"


# --------------------------------------------------------------------------------------------------
# Strict loading


def test_another_kind_is_refused_with_what_is_there(tiny, tmp_path):
    toy().save(tmp_path / "r", figures=False)
    save_edits(tmp_path / "e", [Edit("blocks.0.hook_mlp_out", RED(32))])
    with pytest.raises(StorageError, match="holds a 'ToyResult', not a 'OtherResult'"):
        OtherResult.load(tmp_path / "r")
    with pytest.raises(StorageError, match="holds a 'edits', not a 'ToyResult'"):
        ToyResult.load(tmp_path / "e")
    with pytest.raises(LoRAError, match="holds a 'edits', not a 'lora'"):
        load_lora(tmp_path / "e")
    with pytest.raises(EditError, match="holds a 'ToyResult', not a 'edits'"):
        load_edits(tmp_path / "r")
    with pytest.raises(StorageError, match="not a 'steering_vector'"):
        SteeringVector.load(tmp_path / "e")


@pytest.mark.parametrize("version", [0, FORMAT_VERSION + 1, None])
def test_another_format_version_is_refused(tmp_path, version):
    folder = toy().save(tmp_path / "r", figures=False)
    rewrite(folder, lambda r: r.update(format_version=version))
    with pytest.raises(StorageError, match=f"format version {version!r} but this interp reads"):
        ToyResult.load(folder)


def test_missing_or_unknown_keys_are_refused(tmp_path):
    folder = toy().save(tmp_path / "r", figures=False)
    rewrite(folder, lambda r: r.pop("tables"))
    with pytest.raises(StorageError, match=r"missing keys \['tables'\] and unknown keys none"):
        ToyResult.load(folder)
    folder = toy().save(tmp_path / "r", figures=False)
    rewrite(folder, lambda r: r.update(extra=1))
    with pytest.raises(StorageError, match=r"unknown keys \['extra'\]"):
        ToyResult.load(folder)
    # a config field removed or added since it was saved: no silent defaults
    folder = toy().save(tmp_path / "r", figures=False)
    rewrite(folder, lambda r: r["config"].pop("seed"))
    with pytest.raises(StorageError, match=r"missing keys \['seed'\]"):
        ToyResult.load(folder)
    folder = toy().save(tmp_path / "r", figures=False)
    rewrite(folder, lambda r: r["config"]["keywords"].update(style="x"))
    with pytest.raises(
        StorageError, match=r"saved Keywords has missing keys none and unknown keys \['style'\]"
    ):
        ToyResult.load(folder)


def test_corrupt_record_or_missing_tensors_are_clear_errors(tiny, tmp_path):
    folder = toy().save(tmp_path / "r", figures=False)
    (folder / "interp.json").write_text('{"kind": "ToyResult", "format')
    with pytest.raises(StorageError, match="interp.json is corrupt"):
        ToyResult.load(folder)
    folder = toy().save(tmp_path / "r", figures=False)
    (folder / "tensors.safetensors").unlink()
    with pytest.raises(StorageError, match="tensors.safetensors is missing or corrupt"):
        ToyResult.load(folder)
    path = save_edits(tmp_path / "e", [Edit("blocks.0.hook_mlp_out", RED(32))])
    data = (path / "tensors.safetensors").read_bytes()
    (path / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(EditError, match="corrupt"):
        load_edits(path, tiny)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ToyResult.load(tmp_path / "nowhere")


def test_folders_in_the_old_layouts_are_named_and_can_be_upgraded(tiny, tmp_path):
    # written as interp wrote them before interp.json
    result = tmp_path / "result"
    result.mkdir()
    (result / "config.json").write_text(json.dumps(config_to_dict(ToyConfig(seed=3))))
    (result / "meta.json").write_text(json.dumps({"class": "ToyResult", "model": "m"}))
    (result / "tables.json").write_text(json.dumps({"rows": [{"a": 1}]}))
    (result / "figure.html").write_text("<html></html>")
    save_file({"values": torch.ones(2)}, str(result / "tensors.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"has meta.json\); convert it once"):
        ToyResult.load(result)
    assert upgrade_legacy(result) == "ToyResult"
    loaded = ToyResult.load(result)
    assert loaded.config == ToyConfig(seed=3) and loaded.meta == {"model": "m"}
    assert (result / "figure.html").exists() and not (result / "meta.json").exists()

    edits = tmp_path / "edits"
    edits.mkdir()
    red = RED.random(32, bias_norm=1.0, scale_std=0.1)
    entry = {
        "hook": "blocks.0.hook_mlp_out",
        "function": red.config(),
        "positions": {"rule": "all"},
    }
    entry["positions"] = Edit("blocks.0.hook_mlp_out", red).positions.to_dict()
    (edits / "edits.json").write_text(
        json.dumps({"format_version": 1, "edits": [entry], "model": "m", "edit_kinds": ["red"]})
    )
    save_file({f"0.{k}": v for k, v in red.state_dict().items()}, str(edits / "edits.safetensors"))
    with pytest.raises(FileNotFoundError, match="edit checkpoint in the layout used before"):
        load_edits(edits)
    upgrade_legacy(edits)
    loaded = load_edits(edits, tiny, allow_other_model=True)  # "m" is a label, not tiny's name
    assert torch.equal(loaded[0].function.bias, red.bias)
    assert read_record(edits)["meta"] == {"model": "m", "edit_kinds": ["red"]}

    lora = LoRA.for_model(tiny, rank=2)
    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / "lora.json").write_text(json.dumps({"kind": "lora", **lora.config(), "model": "m"}))
    save_file(dict(lora.state_dict()), str(folder / "lora.safetensors"))
    upgrade_legacy(folder)
    assert load_lora(folder, tiny).shapes == lora.shapes

    vector = SteeringVector.from_class_stats(
        torch.randn(1, 3, 4), {"execution": 1, "reflection": 1, "transition": 1}, (2,)
    )
    folder = tmp_path / "vector"
    folder.mkdir()
    (folder / "vector.json").write_text(json.dumps(vector.describe()))
    save_file({"vectors": vector.vectors}, str(folder / "vector.safetensors"))
    upgrade_legacy(folder)
    assert torch.equal(SteeringVector.load(folder).vectors, vector.vectors)


# --------------------------------------------------------------------------------------------------
# Atomic writes


def test_a_failure_mid_save_leaves_the_old_folder_intact(tmp_path):
    folder = toy(seed=1).save(tmp_path / "r")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def failing_figure(self):
        raise RuntimeError("figure failed")

    # the same kind as the saved folder, so only the failure stops the save
    Broken = type("ToyResult", (ToyResult,), {"figure": failing_figure})
    broken = Broken(config=ToyConfig(seed=9), tensors={"values": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="figure failed"):
        broken.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert ToyResult.load(folder).config.seed == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary folder left behind
    # saving again replaces the folder as a whole
    toy(seed=4).save(folder, figures=False)
    assert sorted(p.name for p in folder.iterdir()) == ["interp.json", "tensors.safetensors"]
    assert torch.equal(
        load_file(str(folder / "tensors.safetensors"))["values"], torch.arange(4.0) + 4
    )


# --------------------------------------------------------------------------------------------------
# reuse_or_run


def test_reuse_or_run_reuses_only_what_matches_and_says_why(tmp_path, capsys):
    calls = []

    def compute(seed):
        def run():
            calls.append(seed)
            return toy(seed)

        return run

    folder = tmp_path / "r"
    first = reuse_or_run(folder, ToyResult, ToyConfig(seed=1), compute(1))
    again = reuse_or_run(folder, ToyResult, ToyConfig(seed=1), compute(1), model_name="toy-model")
    assert calls == [1] and again.config == first.config
    assert "already holds this result" in capsys.readouterr().out

    reuse_or_run(folder, ToyResult, ToyConfig(seed=2), compute(2))
    assert calls == [1, 2]
    assert "recomputing" in (out := capsys.readouterr().out) and "another config (seed)" in out

    reuse_or_run(folder, ToyResult, ToyConfig(seed=2), compute(2), model_name="other-model")
    assert calls == [1, 2, 2]
    assert "computed on model 'toy-model', not 'other-model'" in capsys.readouterr().out

    reuse_or_run(folder, ToyResult, ToyConfig(seed=2), compute(2), resume=False)
    assert calls == [1, 2, 2, 2]

    (folder / "interp.json").write_text("{")
    reuse_or_run(folder, ToyResult, ToyConfig(seed=2), compute(2))
    assert calls == [1, 2, 2, 2, 2] and "does not load" in capsys.readouterr().out
    assert ToyResult.load(folder).config.seed == 2

    record = json.loads((folder / "interp.json").read_text())
    (folder / "interp.json").unlink()  # as if saved before interp.json:
    (folder / "meta.json").write_text(json.dumps({"class": record["kind"], **record["meta"]}))
    reuse_or_run(folder, ToyResult, ToyConfig(seed=2), compute(2))
    assert (
        calls == [1, 2, 2, 2, 2, 2] and "layout used before interp.json" in capsys.readouterr().out
    )


# --------------------------------------------------------------------------------------------------
# PartialRun


HEADER = {"config": config_to_dict(ToyConfig()), "model": "toy-model"}


def test_partial_run_resumes_rows_and_drops_a_torn_last_line(tmp_path):
    out = tmp_path / "eval"
    partial = PartialRun(out, HEADER)
    assert partial.path == tmp_path / "eval.partial.jsonl" and partial.rows == []
    partial.append([{"id": "a", "k": 1, "v": (1, 2)}, {"id": "b", "k": 1}])
    partial.append([{"id": "c", "k": 2}])
    with partial.path.open("a") as f:
        f.write('{"id": "d", "k"')  # a crash in the middle of a line
    resumed = PartialRun(out, HEADER)
    assert [row["id"] for row in resumed.rows] == ["a", "b", "c"]
    assert resumed.rows[0]["v"] == [1, 2]  # as JSON gives it back, in memory too
    assert partial.rows[0]["v"] == [1, 2]
    assert set(resumed.by_key("id")) == {"a", "b", "c"}
    assert set(resumed.by_key(("id", "k"))) == {("a", 1), ("b", 1), ("c", 2)}
    resumed.append([{"id": "d", "k": 2}])
    assert [row["id"] for row in PartialRun(out, HEADER).rows] == ["a", "b", "c", "d"]
    resumed.finish()
    assert not resumed.path.exists()
    assert PartialRun(out, HEADER).rows == []


def test_partial_run_refuses_another_header_or_starts_over(tmp_path):
    out = tmp_path / "eval"
    PartialRun(out, HEADER).append([{"id": "a"}])
    other = {"config": config_to_dict(ToyConfig(seed=5)), "model": "other"}
    with pytest.raises(ValueError, match=r"\(config.seed, model differ\)"):
        PartialRun(out, other)
    assert [row["id"] for row in PartialRun(out, HEADER).rows] == ["a"]  # left as it was
    fresh = PartialRun(out, other, resume=False)
    assert fresh.rows == [] and PartialRun(out, other).rows == []
    # a header torn by a crash holds nothing to resume: start over
    fresh.path.write_text('{"kind": "partial_run", "form')
    assert PartialRun(out, HEADER).rows == []
    # a broken line before the last one is corruption, not a crash
    partial = PartialRun(out, HEADER, resume=False)
    partial.append([{"id": "a"}])
    with partial.path.open("a") as f:
        f.write("not json\n")
    with pytest.raises(ValueError, match="line 3 is corrupt"):
        PartialRun(out, HEADER)
    partial.path.write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match="does not start with a partial-run header"):
        PartialRun(out, HEADER)


# --------------------------------------------------------------------------------------------------
# Nested configs


def test_configs_with_nested_dataclasses_round_trip_through_json(tmp_path):
    config = ToyConfig(fallback=Keywords(("x",), ("y", "z")), many=(Keywords(), Keywords(("q",))))
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["many"][1] == {"reflection": ["q"], "transition": ["alternatively"]}
    back = config_from_dict(ToyConfig, data)
    assert back == config and isinstance(back.fallback, Keywords)
    assert isinstance(back.many[1], Keywords) and back.many[1].reflection == ("q",)
    assert config_from_dict(ToyConfig, config_to_dict(ToyConfig())).fallback is None
    train = TrainConfig(bias_control=BiasControl(form="loss_scale", target=0.3))
    rebuilt = config_from_dict(TrainConfig, config_to_dict(train))
    assert rebuilt == train and isinstance(rebuilt.bias_control, BiasControl)
    with pytest.raises(StorageError, match=r"unknown keys \['colour'\]"):
        config_from_dict(ToyConfig, {**config_to_dict(config), "colour": "red"})
