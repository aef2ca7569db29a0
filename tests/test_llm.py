"""The LLM layer: the real packaged SmolLM2 (loaded once), the factory, and the
OpenAI-compatible backend against a stub server and, when RARX_OPENAI_TEST_URL is set,
a real one."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.llm import ChatPrompt, LLMError, LLMSpec, TokenizationError, load_llm

# -- factory ---------------------------------------------------------------------------


def test_spec_parse_is_explicit() -> None:
    assert LLMSpec.parse("smollm2-135m") == LLMSpec("smollm2-135m", "transformers")
    assert LLMSpec.parse("openai:gpt-4o-mini").backend == "openai"
    assert LLMSpec.parse("openai:gpt-4o-mini").model == "gpt-4o-mini"
    # A model name that merely mentions a backend is not routed to it.
    assert LLMSpec.parse("my-openai-clone").backend == "transformers"
    assert LLMSpec.parse("C:/models/x").backend == "transformers"
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        LLMSpec("m", "vllm")


def test_openai_backend_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="base_url"):
        load_llm("openai:some-model")
    with pytest.raises(ConfigError, match="needs 'model'"):
        load_llm({"backend": "openai"})


def test_chat_prompt_validates() -> None:
    with pytest.raises(ValueError, match="roles"):
        ChatPrompt((("robot", "hi"),))
    with pytest.raises(ValueError):
        ChatPrompt(())
    assert ChatPrompt.user("q", system="s").messages == (("system", "s"), ("user", "q"))


# -- transformers backend ---------------------------------------------------------------


@pytest.mark.slow
def test_generate_is_greedy_and_typed(smol: Any) -> None:
    prompts = ["What is the capital of France? Answer in one word.", "Say hello."]
    a = smol.generate(prompts, max_new_tokens=8)
    b = smol.generate(prompts[:1], max_new_tokens=8)
    assert [o.text for o in a][:1] == [o.text for o in b]  # batched == alone
    for o in a:
        assert o.prompt_tokens > 10 and 0 < o.completion_tokens <= 8
        assert o.seconds > 0 and o.prefill_seconds is not None and o.prefill_seconds <= o.seconds
        assert o.finish_reason in ("stop", "length")
    assert "Paris" in a[0].text


def test_generate_stop_and_prefix(smol: Any) -> None:
    out = smol.generate([ChatPrompt.user("Count from 1 to 9.", prefix="1, 2,")], 12, stop=["5"])
    assert "5" not in out[0].text and out[0].finish_reason == "stop"


def test_chat_template_applied(smol: Any) -> None:
    text = smol.render(ChatPrompt.user("hi", prefix="["))
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n[")
    assert smol.count_tokens("hi") == len(smol.tokenizer(smol.render("hi"))["input_ids"])


def test_next_token_logprobs_batched_left_padding(smol: Any) -> None:
    short = ChatPrompt.user("Pick a letter.", prefix="[")
    long = ChatPrompt.user("Pick one letter from the alphabet, any one you like.", prefix="[")
    cands = list("ABCDE")
    together = smol.next_token_logprobs([short, long], cands)
    alone = [smol.next_token_logprobs([p], cands)[0] for p in (short, long)]
    for t, a in zip(together, alone, strict=True):
        assert set(t) == set(cands)
        for c in cands:
            assert t[c] <= 0 and math.isclose(t[c], a[c], abs_tol=1e-4)


def test_truncate_by_tokens(smol: Any) -> None:
    text = "The mitochondria is the powerhouse of the cell. " * 20
    cut = smol.truncate(text, 10)
    assert len(smol.tokenizer.encode(cut, add_special_tokens=False)) <= 10
    assert text.startswith(cut) and len(cut) > 10
    assert smol.truncate("short", 10) == "short"


def test_single_token_check(smol: Any) -> None:
    smol.check_single_tokens(list("ABCDEFGHIJKLMNOPQRST"))
    with pytest.raises(TokenizationError, match="expected exactly one"):
        smol.check_single_tokens(["A", "Жщ"])
    with pytest.raises(TokenizationError):
        smol.next_token_logprobs(["x"], ["zebra crossing"])


# -- openai backend: a stub server (retries, logprobs parsing) -------------------------


class _Stub(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    fail_first = 0
    top: Any = None  # prompt -> the top_logprobs it reports; None: B, A, " C"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.calls.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if _Stub.fail_first > 0:
            _Stub.fail_first -= 1
            self._send(503, {"error": {"message": "busy"}})
            return
        if body.get("max_tokens") == 1:
            top = _Stub.top(body["prompt"]) if _Stub.top else {"B": -0.1, "A": -2.5, " C": -1.0}
            text = max(top, key=top.get)
            logprobs = {
                "tokens": [text],
                "token_logprobs": [top[text]],
                "top_logprobs": [top],
                "text_offset": [0],
            }
        else:
            logprobs, text = None, "A] > [B]"
        self._send(200, {
            "id": "x", "object": "text_completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "length",
                         "logprobs": logprobs}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        })  # fmt: skip

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub_url() -> Iterator[str]:
    _Stub.calls = []
    _Stub.fail_first = 0
    _Stub.top = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_backend_against_stub(stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    monkeypatch.setenv("RARX_TEST_KEY", "sekrit")
    llm = load_llm({"backend": "openai", "model": "stub", "base_url": stub_url,
                    "api_key_env": "RARX_TEST_KEY", "max_retries": 2})  # fmt: skip
    _Stub.fail_first = 1  # one 503, then the client's retry succeeds
    out = llm.generate(["rank these"], max_new_tokens=16)
    assert out[0].text == "A] > [B]" and out[0].prompt_tokens == 7
    assert out[0].completion_tokens == 3
    assert len(_Stub.calls) == 2 and _Stub.calls[0]["auth"] == "Bearer sekrit"
    assert _Stub.calls[0]["temperature"] == 0.0
    lp = llm.next_token_logprobs([ChatPrompt.user("q", prefix="[")], ["A", "B", "C"])[0]
    # " C" is another token than "C": not counted as C.
    assert lp == {"A": -2.5, "B": -0.1, "C": -math.inf}
    assert _Stub.calls[-1]["max_tokens"] == 1 and _Stub.calls[-1]["logprobs"] >= 3
    assert _Stub.calls[-1]["prompt"].endswith("[")


def test_openai_backend_errors_are_llm_errors(stub_url: str) -> None:
    pytest.importorskip("openai")
    llm = load_llm("openai:stub", base_url=stub_url, max_retries=0)
    _Stub.fail_first = 5
    with pytest.raises(LLMError, match="stub"):
        llm.generate(["x"])
    dead = load_llm("openai:stub", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(LLMError):
        dead.next_token_logprobs(["x"], ["A"])


def _gate_states() -> list[Any]:
    from rarx.types import Query, QueryState

    return [QueryState(Query("a", "What is the capital of France?"))]


def test_openai_without_tokenizer_cannot_score_the_gate_marker(stub_url: str) -> None:
    pytest.importorskip("openai")
    import rarx.pipeline  # noqa: F401 - the stage modules import through the pipeline
    from rarx.stages.gate import GateParams, GateStage

    llm = load_llm("openai:stub", base_url=stub_url, max_retries=0)
    # Cut by characters, <RET> would be "<RE" + "T>": never a token the server reports,
    # so P(<RET>) would read 0 for every query. Without a tokenizer it is an error.
    with pytest.raises(TokenizationError, match="tokenizer=NAME_OR_PATH"):
        GateStage(GateParams(mode="threshold", threshold=0.5), llm).run(_gate_states())
    assert llm.tokenizer_name is None
    with pytest.raises(TokenizationError, match="needs its tokenizer"):
        llm.tokenize("<RET>")
    # A candidate set the server reports none of cannot be scored without a tokenizer.
    with pytest.raises(LLMError, match="reports none of"):
        llm.next_token_logprobs(["q"], ["<RE"])
    # Some reported: the others are below the server's top n.
    assert llm.next_token_logprobs(["q"], ["A", "Z"])[0] == {"A": -2.5, "Z": -math.inf}


@pytest.mark.slow
def test_openai_with_tokenizer_scores_the_gate_marker(stub_url: str) -> None:
    pytest.importorskip("openai")
    import rarx.pipeline  # noqa: F401 - the stage modules import through the pipeline
    from rarx.stages.gate import GateParams, GateStage

    # The server's next tokens after "...<|im_start|>assistant\n", then after "<", "<RET".
    steps = {"\n": {"<": -1.0, "Paris": -0.5}, "<": {"RET": -0.25, "div": -2.0},
             "<RET": {">": -0.125, ">\n": -3.0}}  # fmt: skip
    _Stub.top = lambda prompt: next(t for end, t in steps.items() if prompt.endswith(end))
    llm = load_llm("openai:stub", base_url=stub_url, tokenizer="smollm2-135m", max_retries=0)
    gate = GateStage(GateParams(mode="threshold", threshold=0.2), llm)
    (state,) = gate.run(_gate_states())
    decision = state.context["gate"]
    assert decision["tokens"] == ["<", "RET", ">"]
    assert math.isclose(decision["p_ret"], round(math.exp(-1.375), 6))
    assert math.isclose(decision["p_first_token"], round(math.exp(-1.0), 6))
    assert state.context["retrieve"] is True  # 0.253 >= 0.2
    # One request per marker token, each after the ones before (sent concurrently).
    prompts = sorted((c["prompt"] for c in _Stub.calls), key=len)
    assert len(prompts) == 3
    assert prompts[1] == prompts[0] + "<" and prompts[2] == prompts[0] + "<RET"
    with pytest.raises(TokenizationError, match="expected exactly one"):
        llm.next_token_logprobs(["q"], ["zebra crossing"])


# -- openai backend: a real server ------------------------------------------------------

REAL_URL = os.environ.get("RARX_OPENAI_TEST_URL")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_URL, reason="set RARX_OPENAI_TEST_URL to a server serving SmolLM2")
def test_first_over_http_matches_local(smol: Any) -> None:
    """RARX_OPENAI_TEST_URL serves SmolLM2-135M-Instruct (e.g. llama-cpp-python's server
    on the packaged GGUF); RARX_OPENAI_TEST_MODEL names it (default: smollm2-135m)."""
    from rarx.rerank.prompts import LISTWISE

    model = os.environ.get("RARX_OPENAI_TEST_MODEL", "smollm2-135m")
    remote = load_llm("openai:" + model, base_url=REAL_URL, tokenizer="smollm2-135m",
                      top_logprobs=20)  # fmt: skip
    out = remote.generate(["What is the capital of France? One word."], max_new_tokens=8)
    assert "Paris" in out[0].text
    passages = ["Paris is the capital of France.", "Bananas are yellow.",
                "France's capital city is Paris, on the Seine.", "Cats sleep a lot."]  # fmt: skip
    prompt = LISTWISE.build("What is the capital of France?", passages)
    ids = LISTWISE.ids(len(passages))
    local = smol.next_token_logprobs([prompt], ids)[0]
    http = remote.next_token_logprobs([prompt], ids)[0]
    assert all(math.isfinite(http[i]) for i in ids)
    assert max(abs(local[i] - http[i]) for i in ids) < 0.5  # Q4_1 kernels vs float32
    assert sorted(ids, key=lambda i: -local[i])[0] == sorted(ids, key=lambda i: -http[i])[0]


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_bf16_support_is_read_from_the_cpu_flags() -> None:
    from rarx.llm.transformers_backend import cpu_has_bf16

    assert cpu_has_bf16(AMX) is True
    assert cpu_has_bf16(AVX2_ONLY) is False
    assert cpu_has_bf16("processor\t: 0\n") is None  # no flags line: unknown, no warning


def test_bfloat16_on_a_cpu_without_bf16_units_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rarx.llm import transformers_backend as tb

    monkeypatch.setattr(tb, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="rarx.llm.transformers_backend"):
        llm = tb.TransformersLLM("smollm2-135m", device="cpu", dtype="bfloat16")
    assert str(next(llm.model.parameters()).dtype) == "torch.bfloat16"
    assert "no bfloat16 units" in caplog.text
