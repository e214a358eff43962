"""A generated corpus of LLM and agent supply-chain files: GGUF models, Hugging Face folders and
MCP configurations, benign ones and one malicious file (or folder) per technique.

``build_llm_corpus(dir)`` writes everything under ``dir`` and returns one ``CorpusItem`` per
judged file, with the same "never executed" guarantee as the pickle corpus: any payload that
could run (a template rendered outside a sandbox, Python code imported by a loader, an MCP
server started) would create the item's canary file under ``dir/canaries``. Nothing here renders,
imports or starts what it writes. Reused by ``bench/scan_llm.py``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from tests.scan_corpus import CorpusItem, _onnx, _safetensors
from tests.scan_llm_mcp import mcp_items
from tests.scan_llm_templates import BENIGN, malicious


class LlmCorpusBuilder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.canaries = root / "canaries"
        self.canaries.mkdir(parents=True, exist_ok=True)
        self.items: list[CorpusItem] = []

    def canary(self, technique: str) -> Path:
        return self.canaries / f"{technique}.canary"

    def path(self, rel: str, malicious: bool) -> Path:
        path = self.root / ("malicious" if malicious else "benign") / rel
        assert not path.exists(), f"corpus name used twice: {path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add(
        self, rel: str, data: bytes | str, technique: str, *, bad: bool = True, expect: str = "high"
    ) -> Path:
        path = self.path(rel, bad)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        self.items.append(
            CorpusItem(path, technique, bad, expect, self.canary(technique) if bad else None)
        )
        return path

    def side(self, rel: str, data: bytes | str, *, bad: bool) -> None:
        """A file beside a judged one (weights, config) that is not itself an item."""
        path = self.path(rel, bad)
        path.write_bytes(data.encode() if isinstance(data, str) else data)


# --------------------------------------------------------------------------- GGUF


def gguf_bytes(
    arch: str,
    name: str,
    template: str | None,
    *,
    vocab: int = 64,
    extra: dict[str, str] | None = None,
    tensors: tuple[tuple[str, tuple[int, ...], int | None], ...] = (("tok_embd", (8, 4), None),),
) -> bytes:
    """A small GGUF file written by the ``gguf`` package's own writer. ``tensors``: (name,
    shape, declared bytes or None for the true size) of float32 tensors."""
    import io

    from gguf import GGUFWriter

    class _Mem(GGUFWriter):  # the writer wants a path: hand it an in-memory file instead
        def open_output_file(self, path: Path | None = None) -> None:
            self.fout = [io.BytesIO()]
            from gguf.gguf_writer import WriterState

            self.state = WriterState.EMPTY

    w = _Mem(None, arch)
    w.add_name(name)
    w.add_context_length(4096)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    if template is not None:
        w.add_chat_template(template)
    for key, value in (extra or {}).items():
        w.add_string(key, value)
    data = []
    for tname, shape, declared in tensors:
        array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        nbytes = array.nbytes if declared is None else declared
        w.add_tensor_info(tname, shape, np.dtype(np.float32), nbytes)
        data.append(array.tobytes()[:nbytes].ljust(nbytes, b"\0"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    out = w.fout[0]
    for blob in data:
        out.write(b"\0" * (-out.tell() % 32))
        out.write(blob)
        out.write(b"\0" * (-len(blob) % 32))
    return out.getvalue()


def _patch_array_count(blob: bytes, key: str, count: int) -> bytes:
    """Make the metadata array ``key`` claim ``count`` items (key, type u32, item type u32)."""
    at = blob.index(key.encode()) + len(key) + 8
    return blob[:at] + struct.pack("<Q", count) + blob[at + 8 :]


_GGUF_BENIGN = {
    "llama3": ("llama", "Meta-Llama-3.1-8B-Instruct"),
    "qwen2": ("qwen2", "Qwen2.5-7B-Instruct"),
    "mistral": ("llama", "Mistral-7B-Instruct-v0.3"),
    "gemma": ("gemma2", "gemma-2-9b-it"),
    "phi3": ("phi3", "Phi-3-mini-4k-instruct"),
}


def _gguf(b: LlmCorpusBuilder) -> None:
    for family, (arch, name) in _GGUF_BENIGN.items():
        b.add(
            f"gguf/{name}.Q4_K_M.gguf",
            gguf_bytes(arch, name, BENIGN[family]),
            f"gguf-{family}",
            bad=False,
        )
    b.add(
        "gguf/base-model-no-template.gguf",
        gguf_bytes("llama", "base", None),
        "gguf-base",
        bad=False,
    )
    for technique, template in malicious(str(b.canary("{t}"))).items():
        template = template.replace("{t}", technique)
        arch = "qwen2" if "<|im_start|>" in template else "llama"
        b.add(
            f"gguf/{technique}.gguf",
            gguf_bytes(arch, "Llama-3.1-8B-Instruct", template),
            f"gguf-{technique}",
        )
    named = gguf_bytes(
        "llama",
        "Llama-3.1-8B-Instruct",
        BENIGN["llama3"],
        extra={"tokenizer.chat_template.tool_use": malicious("x")["template-instructions"]},
    )
    b.add("gguf/named-template-poisoned.gguf", named, "gguf-named-template")
    good = gguf_bytes("llama", "Llama-3.1-8B-Instruct", BENIGN["llama3"])
    b.add("gguf/truncated.gguf", good[: len(good) // 3], "gguf-truncated", expect="medium")
    lying = gguf_bytes(
        "llama", "x", BENIGN["llama3"], tensors=(("a", (8, 4), None), ("b", (4096, 4096), 64))
    )
    b.add("gguf/tensor-past-end.gguf", lying, "gguf-tensor-past-end", expect="medium")
    overlap = gguf_bytes(
        "llama", "x", BENIGN["llama3"], tensors=(("a", (64, 64), 32), ("b", (8, 4), None))
    )
    b.add("gguf/tensor-overlap.gguf", overlap, "gguf-tensor-overlap", expect="medium")
    # header: magic, version (u32), tensor count (u64), metadata count (u64)
    tensors_lie = good[:8] + struct.pack("<Q", 1 << 40) + good[16:]
    b.add("gguf/tensor-count-lie.gguf", tensors_lie, "gguf-tensor-count-lie", expect="medium")
    count = _patch_array_count(good, "tokenizer.ggml.tokens", 1 << 40)
    b.add("gguf/array-count-lie.gguf", count, "gguf-array-count-lie", expect="medium")


# --------------------------------------------------------------------------- Hugging Face


def _hf_config(model_type: str, arch: str, **extra: object) -> str:
    doc = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "vocab_size": 128256,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0",
        **extra,
    }
    return json.dumps(doc, indent=2)


def _tok_config(template: str, **extra: object) -> str:
    doc = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": template,
        **extra,
    }
    return json.dumps(doc, indent=2)


def _weights() -> bytes:
    body = np.arange(6, dtype=np.float32).tobytes()
    return _safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, body)


_GEN_CONFIG = json.dumps({"bos_token_id": 1, "eos_token_id": 2, "temperature": 0.6, "top_p": 0.9})


def _hf(b: LlmCorpusBuilder) -> None:
    for family, model_type, arch in (
        ("llama3", "llama", "LlamaForCausalLM"),
        ("qwen2", "qwen2", "Qwen2ForCausalLM"),
        ("mistral", "mistral", "MistralForCausalLM"),
    ):
        d = f"hf/{family}"
        b.add(f"{d}/config.json", _hf_config(model_type, arch), f"hf-{family}-config", bad=False)
        b.add(
            f"{d}/tokenizer_config.json",
            _tok_config(BENIGN[family]),
            f"hf-{family}-tokenizer",
            bad=False,
        )
        b.add(f"{d}/generation_config.json", _GEN_CONFIG, f"hf-{family}-generation", bad=False)
        b.add(f"{d}/model.safetensors", _weights(), f"hf-{family}-weights", bad=False)
    b.side("hf/gemma/config.json", _hf_config("gemma2", "Gemma2ForCausalLM"), bad=False)
    b.add("hf/gemma/chat_template.jinja", BENIGN["gemma"], "hf-gemma-template-file", bad=False)
    b.add("hf/onnx/model.onnx", _onnx("model.onnx_data"), "hf-onnx-external-data", bad=False)

    c = b.canary
    # auto_map: the classes come from code in the repository, run by trust_remote_code=True
    b.add(
        "hf/auto-map/config.json",
        _hf_config(
            "evil",
            "EvilForCausalLM",
            auto_map={"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
        ),
        "hf-auto-map",
    )
    b.side("hf/auto-map/model.safetensors", _weights(), bad=True)
    b.add(
        "hf/auto-map/modeling_evil.py",
        f"import os\nos.system('touch {c('hf-auto-map-code')}')\n",
        "hf-auto-map-code",
    )
    b.add(
        "hf/other-repo/config.json",
        _hf_config(
            "llama", "LlamaForCausalLM", auto_map={"AutoModel": "attacker/helpers--modeling.Model"}
        ),
        "hf-auto-map-other-repo",
    )
    b.add(
        "hf/trust/config.json",
        _hf_config("llama", "LlamaForCausalLM", trust_remote_code=True),
        "hf-trust-remote-code",
    )
    b.side("hf/py-beside/model.safetensors", _weights(), bad=True)
    b.add(
        "hf/py-beside/custom_layers.py",
        f"open({str(c('hf-python-beside-weights'))!r}, 'w').close()\n",
        "hf-python-beside-weights",
    )
    for technique, template in malicious(str(c("{t}"))).items():
        template = template.replace("{t}", f"hf-{technique}")
        b.side(f"hf/{technique}/config.json", _hf_config("llama", "LlamaForCausalLM"), bad=True)
        b.add(f"hf/{technique}/tokenizer_config.json", _tok_config(template), f"hf-{technique}")
    b.side("hf/jinja-file/config.json", _hf_config("llama", "LlamaForCausalLM"), bad=True)
    b.add(
        "hf/jinja-file/chat_template.jinja",
        malicious(str(c("hf-jinja-file")))["template-trigger"],
        "hf-jinja-file",
    )
    b.add(
        "hf/lying-safetensors/model.safetensors",
        _safetensors(
            {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 4096]}}, b"\0" * 24
        ),
        "hf-safetensors-lying",
        expect="medium",
    )
    b.add("hf/onnx-escape/model.onnx", _onnx("../../../../etc/passwd"), "hf-onnx-escape")
    overlap = {
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]},
    }
    b.add(
        "hf/overlapping-safetensors/model.safetensors",
        _safetensors(overlap, b"\0" * 32),
        "hf-safetensors-overlap",
        expect="medium",
    )


def build_llm_corpus(directory: Path) -> list[CorpusItem]:
    """Write the corpus under ``directory`` and describe every judged file."""
    b = LlmCorpusBuilder(Path(directory))
    _gguf(b)
    _hf(b)
    mcp_items(b)
    return b.items


if __name__ == "__main__":  # python tests/scan_llm_corpus.py DIR
    import sys

    for item in build_llm_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "llm-corpus")):
        print(("MAL " if item.malicious else "OK  ") + f"{item.technique:36} {item.path}")
