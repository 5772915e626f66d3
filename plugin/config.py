"""AWPO configuration: one dataclass, loaded from YAML/JSON plus ``AWPO_<FIELD>`` environment overrides.

ms-swift rejects unknown command-line flags, so AWPO's own hyper-parameters come from a file named by
``AWPO_CONFIG`` (or passed to :meth:`AWPOConfig.load`) and from environment variables::

    AWPO_CONFIG=configs/awpo.yaml AWPO_EPS_MIX=0.7 AWPO_GATING=0 swift rlhf ... --external_plugins plugin/awpo.py

The judge settings live in the file's ``judge:`` section (:class:`JudgeConfig`), with the environment
overrides ``AWPO_JUDGE_<FIELD>`` (e.g. ``AWPO_JUDGE_BASE_URL``, ``AWPO_JUDGE_MODEL``).
``AWPO_JUDGE_API_KEY`` is special: it is the key itself, read at call time and never stored in the config.
Other ``AWPO_*`` variables that are not settings (paths read by eval, the model folder...) are listed in
:data:`NON_FIELD_ENV`; any other ``AWPO_*`` name is an error with a "did you mean" hint, so a typo of a
field never passes silently.

Validation refuses what is invalid and warns (logger ``awpo``) on what is legal but unusual; every message
names the field and where its value came from (the file, the environment variable, or code / default).

Pure Python (no torch, no ms-swift) so that any tool can read and validate a config.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

ENV_PREFIX = 'AWPO_'
JUDGE_ENV_PREFIX = 'AWPO_JUDGE_'
CONFIG_ENV = 'AWPO_CONFIG'
# Every environment variable of ours that is not a config field (they hold paths or secrets, not
# settings), with who reads it. The one place to add a new one; tests/test_config.py checks that every
# AWPO_* variable the repo reads is a field or listed here.
NON_FIELD_ENV = {
    'AWPO_CONFIG': 'this module: the YAML/JSON config file',
    'AWPO_JUDGE_API_KEY': 'plugin/judge_openai.py: the judge API key (the default judge.api_key_env)',
    'AWPO_SMOLLM2_DIR': 'cpu_model/smollm2.py, shells/: folder of the converted SmolLM2 model',
    'AWPO_WARMSTART_DIR': 'cpu_model/smollm2.py, shells/warm_start.sh: folder of the SFT warm-start model',
    'AWPO_BFCL_PYTHON': "eval/bfcl.py: python of bfcl-eval's own environment",
    'AWPO_BFCL_DATA': "data_prep/bfcl_live.py: bfcl-eval's data folder",
    'AWPO_APIBANK_DIR': 'eval/apibank.py: API-Bank data folder',
    'AWPO_WHEEL_CACHE': 'shells/setup_cpu.sh: where the llama-cpp-python wheel built once is kept',
}
logger = logging.getLogger('awpo')
_warned: set = set()
# How tool names are compared in the outcome reward's r_name (Eq. 16); see plugin/outcome_reward.py::name_score.
NAME_MATCH_MODES = ('multiset', 'set')
# Readings of AWPO's gate (Eq. 25), plugin/advantage.py GATE_RULES: the equation as written (default), the
# equation plus the groups whose outcome reward is flat, the flat groups only (docs/settings.md).
GATE_RULES = ('eq25', 'eq25_plus_flat', 'flat_only')
GATE_RULE_ALIASES = {'zero_spread': 'eq25_plus_flat', 'zero_spread_only': 'flat_only'}  # the names

_TRUE = {'1', 'true', 'yes', 'on'}
_FALSE = {'0', 'false', 'no', 'off'}


# judge.guided_json: how the judge asks the server for structured output (see plugin/judge_openai.py).
DIALECTS = ('auto', 'json_schema', 'json_object', 'none')
Dialect = str


def _coerce_dialect(name: str, value: Any) -> str:
    """A dialect name; the old booleans map to ``true -> auto`` (constrain wherever the server allows) and
    ``false -> none`` (no response_format)."""
    s = str(value).strip().lower() if value is not None else 'none'
    if isinstance(value, bool) or s in _TRUE or s in _FALSE:
        return 'auto' if (value is True or s in _TRUE) else 'none'
    if s in DIALECTS:
        return s
    raise ValueError(f'AWPO config field {name!r}: must be one of {", ".join(DIALECTS)} (or the old true = auto, '
                     f'false = none), got {value!r}')


def _coerce(name: str, typ: Any, value: Any) -> Any:
    """Convert a YAML/JSON/env value to the field's declared type, or raise ValueError naming the field."""
    if typ == 'Dialect':
        return _coerce_dialect(name, value)
    typ = {'bool': bool, 'float': float, 'int': int, 'str': str, 'Optional[str]': Optional[str],
           'Optional[float]': Optional[float], 'Optional[int]': Optional[int]}.get(typ, typ)
    optional = typ in (Optional[str], Optional[float], Optional[int])
    if optional:
        if value is None or (isinstance(value, str) and value.strip().lower() in ('', 'none', 'null')):
            return None
        typ = {Optional[str]: str, Optional[float]: float, Optional[int]: int}[typ]
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f'AWPO config field {name!r}: cannot read {value!r} as {getattr(typ, "__name__", typ)}')
    raise ValueError(f'AWPO config field {name!r}: unsupported type {typ}')


def _did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.7)
    return f' (did you mean {close[0]}?)' if close else ''


def _apply(obj, values: Mapping[str, Any], where: str, prefix: str = '', sources: Optional[dict] = None) -> None:
    """Set ``values`` on the dataclass ``obj``; ``sources[field] = where`` records where each value came from."""
    known = {f.name: f for f in fields(obj)}
    sources = obj.__dict__.setdefault('_sources', {}) if sources is None else sources
    for key, value in values.items():
        if key not in known:
            raise ValueError(f'AWPO config: unknown key {prefix + str(key)!r} in {where}'
                             f'{_did_you_mean(key, known)} (known: {", ".join(sorted(known))})')
        f = known[key]
        if f.name == 'judge':
            if not isinstance(value, Mapping):
                raise ValueError(f'AWPO config field {"judge"!r} in {where}: expected a mapping, got {value!r}')
            _apply(obj.judge, value, where, prefix='judge.', sources=sources)
            continue
        try:
            setattr(obj, key, _coerce(prefix + key, f.type, value))
        except ValueError as e:
            raise ValueError(f'{e} (in {where})') from None
        sources[prefix + key] = where


def _origin(sources: Optional[Mapping[str, str]], *names: str) -> str:
    """Where the named fields' values came from, for a message: '(in file x.yaml)', '(in code or default)'."""
    got = sorted({(sources or {}).get(n, 'code or default') for n in names})
    return f'(in {" / ".join(got)})'


def _warn(msg: str) -> None:
    """A legal but unusual setting: warned once per process (the config is loaded by several modules)."""
    if msg not in _warned:
        _warned.add(msg)
        logger.warning('[AWPO] %s', msg)


def _check_finite(obj, prefix: str, sources: Optional[Mapping[str, str]]) -> None:
    """Every numeric field of ``obj`` is a finite number (NaN/inf anywhere is refused)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            name = prefix + f.name
            raise ValueError(f'AWPO config field {name!r} {_origin(sources, name)}: must be a finite number, '
                             f'got {v!r}')


def _read_config_file(p: Path, named_by: str = '') -> Mapping:
    """The mapping in a YAML (or ``.json``) file; any failure is one ``ValueError`` naming the file and,
    for a syntax error, the line and column (no parser traceback)."""
    if not p.is_file():
        raise ValueError(f'AWPO config: file not found: {p}{named_by}')
    try:
        text = p.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f'AWPO config: cannot read {p}{named_by}: {e}') from None
    if p.suffix.lower() == '.json':
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f'AWPO config: {p}{named_by} is not valid JSON: {e.msg} at line {e.lineno}, '
                             f'column {e.colno}') from None
        except (ValueError, RecursionError) as e:
            raise ValueError(f'AWPO config: {p}{named_by} is not valid JSON: {type(e).__name__}: {e}') from None
    else:
        import yaml
        try:
            data = yaml.safe_load(text) or {}
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            at = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
            what = ' '.join(x for x in (e.context, e.problem) if x)
            raise ValueError(f'AWPO config: {p}{named_by} is not valid YAML{at}: {what}') from None
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            raise ValueError(f'AWPO config: {p}{named_by} is not valid YAML: {type(e).__name__}: {e}') from None
    if not isinstance(data, Mapping):
        raise ValueError(f'AWPO config: {p}{named_by} must hold a mapping at top level, got {type(data).__name__}')
    return data


BASE_KEY = 'base'


def _read_config_chain(p: Path, named_by: str = '') -> list:
    """``[(file, settings)]`` from the root-most base file to ``p``. A file may name the file it overrides
    (``base: awpo.yaml``, relative to the file itself; an ablation is its base + one switch): the base is read
    first and later files win field by field, so each field's recorded origin is the file that set it. A
    missing base or a cycle is one ``ValueError`` naming the files."""
    chain, seen = [], []
    while True:
        data = dict(_read_config_file(p, named_by))
        # Accept a file whose AWPO settings sit under an `awpo:` key (so one file can serve several tools).
        if set(data) == {'awpo'} and isinstance(data['awpo'], Mapping):
            data = dict(data['awpo'])
        base = data.pop(BASE_KEY, None)
        chain.append((p, data))
        seen.append(p.resolve())
        if base is None:
            return chain[::-1]
        if not isinstance(base, str) or not base.strip():
            raise ValueError(f'AWPO config: {p}: {BASE_KEY!r} must name a file (relative to {p.parent}), '
                             f'got {base!r}')
        nxt = Path(os.path.normpath(p.parent / base))
        if nxt.resolve() in seen:
            raise ValueError(f'AWPO config: {p}: {BASE_KEY} {base!r} makes a cycle: '
                             + ' -> '.join(str(x) for x in [*seen, nxt.resolve()]))
        named_by, p = f' (the {BASE_KEY} of {p})', nxt


@dataclass
class JudgeConfig:
    """Settings of the LLM-as-a-judge reasoning reward (paper appendix B).

    ``backend``: ``openai`` (any OpenAI-compatible endpoint), ``rubric`` (offline deterministic
    approximation of the rubric, not an LLM) or ``auto`` (``openai`` when ``base_url`` is set, else ``rubric``).
    """
    backend: str = 'auto'
    base_url: Optional[str] = None
    model: str = 'Qwen/Qwen3-235B-A22B'
    # Name of the environment variable holding the API key. The key itself is never stored here.
    api_key_env: str = 'AWPO_JUDGE_API_KEY'
    concurrency: int = 64
    timeout: float = 60.0          # seconds per request
    batch_deadline: float = 180.0  # seconds for all requests of one training step
    max_retries: int = 2           # handed to the openai client (it retries 408/409/429/5xx with backoff)
    temperature: float = 0.0
    max_tokens: int = 32
    cache_path: Optional[str] = None  # append-only JSONL; None = memory only
    # How to ask the server for a {"score": number} reply: auto (probe at start-up: json_schema, then
    # json_object + schema, then none) | json_schema | json_object | none. Old true/false = auto/none.
    guided_json: Dialect = 'auto'
    tolerate_unreachable: bool = False  # start training even if the endpoint fails its health check
    # Ask the server for thinking off in every request (chat_template_kwargs {"enable_thinking": false}, as vLLM
    # and SGLang read it); a server that rejects the kwarg is asked without it, with a warning.
    disable_thinking: bool = True
    # The stop rule: a judge whose share of missing scores stays above max_missing_share for missing_patience
    # consecutive batches (one batch per generation step and rank) stops the run with JudgeSwitchedOff, since
    # AWPO would silently train outcome-only; tolerate_missing: true keeps training (scores fall back).
    max_missing_share: float = 0.5
    missing_patience: int = 5
    tolerate_missing: bool = False
    breaker_failures: int = 8        # consecutive failed requests that open the circuit breaker
    breaker_cooldown: float = 60.0   # seconds the breaker stays open before one probe request
    max_requests: Optional[int] = None  # per-run ceiling on judge requests (cost limit)
    max_total_tokens: Optional[int] = None  # per-run ceiling on tokens reported by the server
    reasoning_budget_chars: int = 6000  # the candidate's reasoning is cut to this length before judging
    snap_to_tier: bool = True        # snap an in-range score to the nearest rubric tier
    # AWPO trainer: judge requests run while the old/ref log-prob pass does; waited for only in the advantage.
    overlap: bool = True

    def validate(self, sources: Optional[Mapping[str, str]] = None) -> 'JudgeConfig':
        """Refuse invalid values; ``sources`` (``'judge.<field>' -> where``) names where each came from."""
        sources = self.__dict__.get('_sources') if sources is None else sources

        def fail(name: str, msg: str):
            raise ValueError(f'AWPO config field {"judge." + name!r} {_origin(sources, "judge." + name)}: {msg}')

        if self.backend not in ('auto', 'openai', 'rubric'):
            fail('backend', f'must be auto, openai or rubric, got {self.backend!r}')
        try:
            self.guided_json = _coerce_dialect('judge.guided_json', self.guided_json)
        except ValueError as e:
            raise ValueError(f'{e} {_origin(sources, "judge.guided_json")}') from None
        _check_finite(self, 'judge.', sources)
        for name in ('concurrency', 'reasoning_budget_chars', 'breaker_failures', 'max_tokens', 'missing_patience'):
            if getattr(self, name) < 1:
                fail(name, f'must be >= 1, got {getattr(self, name)}')
        for name in ('timeout', 'batch_deadline'):
            if not getattr(self, name) > 0:
                fail(name, f'must be a positive number, got {getattr(self, name)}')
        for name in ('max_retries', 'breaker_cooldown', 'temperature'):
            if getattr(self, name) < 0:
                fail(name, f'must be >= 0, got {getattr(self, name)}')
        for name in ('max_requests', 'max_total_tokens'):
            v = getattr(self, name)
            if v is not None and v < 0:
                fail(name, f'must be >= 0 or null, got {v}')
        if not 0.0 <= self.max_missing_share < 1.0:
            fail('max_missing_share', f'must be in [0, 1) (1 could never be exceeded: use tolerate_missing: true), '
                 f'got {self.max_missing_share}')
        if self.backend == 'openai' and not self.base_url:
            fail('base_url', "required when judge.backend is 'openai' (or set AWPO_JUDGE_BASE_URL)")
        if self.temperature > 2:
            _warn(f"AWPO config field 'judge.temperature' {_origin(sources, 'judge.temperature')} = "
                  f'{self.temperature}: above 2, the largest temperature OpenAI-compatible servers accept; '
                  'judge scores will be mostly noise')
        return self

    @property
    def resolved_backend(self) -> str:
        if self.backend == 'auto':
            return 'openai' if self.base_url else 'rubric'
        return self.backend

    def api_key(self) -> Optional[str]:
        """The key, read from the environment at call time (never cached on the object)."""
        return os.environ.get(self.api_key_env) or None


@dataclass
class AWPOConfig:
    """AWPO hyper-parameters (paper Sec. 3.2, Algorithm 1). The paper publishes no values; the defaults
    below are ours, each with its reason (see also README, "AWPO defaults").

    eps_std     Eq. 24 denominator guard. 1e-6: only prevents 0/0 when both groups stds are zero; small
                enough not to bias r_g for rewards on the [0, 3] scale.
    eps_mix     Eq. 25 cap on r_g. r_g is 0.5 when the judge adds no dispersion to the outcome reward and
                tends to 1 when it dominates. With a judge independent of the outcome and
                sigma_judge = c * sigma_out, r_g = s/(1+s), s = sqrt(1+c^2): 0.7 lets the judge widen the
                group's spread up to about c = 2 (r_g = 0.69) and shuts the gate beyond, where Theorem 3.6's
                noise term dominates.
    r_out_max   Eq. 25 saturation gate: the outcome reward's maximum, S_format + S_exec = 1 + 1 = 2.
    tau_low     Eq. 27: a group mean below 0.5 means most samples fail even the format: too hard to learn from.
    tau_high    Eq. 27: above 1.8 (90 % of the maximum) the group is near-saturated.
    alpha_base  Eq. 27 weight outside the band: 1.0 keeps GRPO's advantage scale, so learning rates transfer.
    alpha_prio  Eq. 27 weight inside the band: 1.5, a moderate emphasis (a 2x weight doubles the effective
                learning rate on those groups and destabilised short test runs in our hands).
    eps_min     Eq. 29 radius at full reliance on the judge: 0.1, half the usual PPO/GRPO radius.
    eps_max     Eq. 29 radius with no judge reliance: 0.2, the usual PPO/GRPO value.
    adv_eps     Eq. 26 epsilon: 1e-4, the constant ms-swift's stock GRPO adds to the group std.
    gating, difficulty, dynamic_clip: ablation switches of Table 5.
    gate_rule   which reading of the gate (Eq. 25) computes w^mix_g (plugin/advantage.py GATE_RULES):
                'eq25' (default) the equation as written: the gate is shut where the outcome reward is flat
                (sigma_out = 0 gives r_g ~ 1 > eps_mix); 'eq25_plus_flat' Eq. 25, and w = 1 in groups with
                flat, not-maximal outcome reward that the judge ranks (the paper's prose: the judge where the
                outcome's variance is insignificant); 'flat_only' w = 1 in those groups only, 0 elsewhere.
                'zero_spread' / 'zero_spread_only' are accepted for the last two.
    reward_name_match  Eq. 16 (r_name): 'multiset' counts repeated tool names, so extra or duplicated calls
                always score below the exact answer (hedge-proof, as ToolRL's code); 'set' is the
                paper-literal reading (a repeated guess is free). See plugin/outcome_reward.py::name_score.
    """
    eps_std: float = 1e-6
    eps_mix: float = 0.7
    r_out_max: float = 2.0
    tau_low: float = 0.5
    tau_high: float = 1.8
    alpha_base: float = 1.0
    alpha_prio: float = 1.5
    eps_min: float = 0.1
    eps_max: float = 0.2
    adv_eps: float = 1e-4
    gating: bool = True
    difficulty: bool = True
    dynamic_clip: bool = True
    gate_rule: str = 'eq25'
    reward_name_match: str = 'multiset'
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    # ------------------------------------------------------------------ validation
    def validate(self) -> 'AWPOConfig':
        """Refuse invalid values (ValueError), warn on legal but unusual ones; messages name the field and
        where its value came from (file, environment variable, or code / default)."""
        src = self.__dict__.get('_sources')

        def fail(names: str, msg: str):
            fields_ = names.split('/')
            raise ValueError(f'AWPO config field {fields_[0]!r} {_origin(src, *fields_)}: {msg}')

        for name in ('eps_std', 'eps_mix', 'r_out_max', 'tau_low', 'tau_high', 'alpha_base', 'alpha_prio',
                     'eps_min', 'eps_max', 'adv_eps'):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                fail(name, f'must be a finite number, got {v!r}')
        for name in ('eps_std', 'eps_mix', 'eps_min', 'eps_max', 'adv_eps'):
            if getattr(self, name) < 0:
                fail(name, f'must be >= 0, got {getattr(self, name)}')
        if self.eps_std <= 0:
            fail('eps_std', f'must be > 0 (Eq. 24), got {self.eps_std}')
        if self.adv_eps <= 0:
            fail('adv_eps', f'must be > 0 (Eq. 26), got {self.adv_eps}')
        if self.r_out_max <= 0:
            fail('r_out_max', f'must be > 0 (Eq. 25: the outcome reward\'s peak group mean, 2 for awpo_outcome), '
                 f'got {self.r_out_max}')
        if self.tau_low >= self.tau_high:
            fail('tau_low/tau_high', f'must be < tau_high, got tau_low={self.tau_low} tau_high={self.tau_high}')
        if self.alpha_base <= 0:
            fail('alpha_base', f'must be > 0 (Eq. 27), got {self.alpha_base}')
        if self.alpha_prio <= self.alpha_base:
            fail('alpha_prio/alpha_base', f'must be > alpha_base, got alpha_prio={self.alpha_prio} '
                 f'alpha_base={self.alpha_base}')
        if self.eps_min > self.eps_max:
            fail('eps_min/eps_max', f'must be <= eps_max, got eps_min={self.eps_min} eps_max={self.eps_max}')
        if self.eps_max <= 0:
            fail('eps_max', f'a clip radius must be > 0 (Eq. 29; 0 allows no policy update), got {self.eps_max}')
        if self.eps_max >= 1:
            fail('eps_max', f'a clip radius must be < 1, got {self.eps_max}')
        for name in ('gating', 'difficulty', 'dynamic_clip'):
            if not isinstance(getattr(self, name), bool):
                fail(name, f'must be a boolean, got {getattr(self, name)!r}')
        self.gate_rule = GATE_RULE_ALIASES.get(self.gate_rule, self.gate_rule)
        if self.gate_rule not in GATE_RULES:
            fail('gate_rule', f'must be one of {", ".join(GATE_RULES)} (Eq. 25 readings, docs/settings.md), '
                 f'got {self.gate_rule!r}')
        if self.gate_rule != 'eq25' and not self.gating:
            fail('gate_rule/gating', f'gate_rule {self.gate_rule!r} is a reading of the gate, but gating is off '
                 '(w_mix = 1 everywhere): set gating: true, or gate_rule: eq25')
        if self.reward_name_match not in NAME_MATCH_MODES:
            fail('reward_name_match', f'must be one of {", ".join(NAME_MATCH_MODES)}, got {self.reward_name_match!r}')
        self.judge.validate({k: v for k, v in (src or {}).items() if k.startswith('judge.')})
        self._warn_unusual(src)
        return self

    def _warn_unusual(self, src) -> None:
        """Legal settings whose effect is easy to misread (Eqs. 25 and 29): one warning each."""
        def where(name):
            return f'{name!r} {_origin(src, name)}'
        if self.gating and self.eps_mix >= 1:
            _warn(f'AWPO config field {where("eps_mix")} = {self.eps_mix} >= 1: r_g (Eq. 24) is always < 1, so '
                  'the dispersion cap of Eq. 25 never shuts the gate; only the saturation gate '
                  '(group mean < r_out_max) limits the judge')
        if self.gating and self.eps_mix == 0:
            _warn(f'AWPO config field {where("eps_mix")} = 0: 1[r_g < 0] is never true, so the gate of Eq. 25 is '
                  'always shut: the judge never enters the advantage (outcome-only GRPO with AWPO weights)')
        if self.gating and self.r_out_max > 2:
            _warn(f'AWPO config field {where("r_out_max")} = {self.r_out_max} > 2, the maximum of awpo_outcome: '
                  'unless your outcome columns can sum above 2, the saturation gate of Eq. 25 never shuts')
        if self.dynamic_clip and self.eps_min == 0:
            _warn(f'AWPO config field {where("eps_min")} = 0: at full reliance on the judge (Eq. 29) the clip '
                  'radius is 0 and the clipped objective allows the policy no change on that batch')

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = 'dict') -> 'AWPOConfig':
        cfg = cls()
        _apply(cfg, values, where)
        return cfg.validate()

    @classmethod
    def load(cls, path: Optional[str | os.PathLike] = None,
             env: Optional[Mapping[str, str]] = None) -> 'AWPOConfig':
        """Defaults <- YAML/JSON file (``path`` or ``$AWPO_CONFIG``, after the file its ``base:`` names) <-
        ``AWPO_<FIELD>`` env overrides."""
        env = os.environ if env is None else env
        cfg = cls()
        named_by = '' if path is not None else f' (named by ${CONFIG_ENV})'
        path = path if path is not None else env.get(CONFIG_ENV) or None
        if path:
            for p, data in _read_config_chain(Path(path), named_by):  # a `base:` file first
                _apply(cfg, data, f'file {p}')
        cfg._apply_env(env)
        return cfg.validate()

    def _apply_env(self, env: Mapping[str, str]) -> None:
        """``AWPO_<FIELD>`` / ``AWPO_JUDGE_<FIELD>`` overrides. Names in :data:`NON_FIELD_ENV` and the
        variable named by ``judge.api_key_env`` are not settings and are skipped; any other ``AWPO_*``
        name is refused with the closest real name, so a typo never passes silently."""
        top = {f.name: f for f in fields(self) if f.name != 'judge'}
        judge = {f.name: f for f in fields(self.judge)}
        key_env = env.get(JUDGE_ENV_PREFIX + 'API_KEY_ENV') or self.judge.api_key_env
        sources = self.__dict__.setdefault('_sources', {})
        for key, value in env.items():
            if not key.startswith(ENV_PREFIX) or key in NON_FIELD_ENV or key == key_env:
                continue
            if key.startswith(JUDGE_ENV_PREFIX):
                obj, name, fields_, prefix = self.judge, key[len(JUDGE_ENV_PREFIX):].lower(), judge, 'judge.'
            else:
                obj, name, fields_, prefix = self, key[len(ENV_PREFIX):].lower(), top, ''
            if name not in fields_:
                known = ([ENV_PREFIX + n.upper() for n in top] + [JUDGE_ENV_PREFIX + n.upper() for n in judge]
                         + sorted(NON_FIELD_ENV))
                raise ValueError(f'AWPO config: unknown environment variable {key}{_did_you_mean(key, known)}. '
                                 f'AWPO_* variables set config fields ({"judge fields" if prefix else "fields"}: '
                                 f'{", ".join(sorted(fields_))}) or are one of {", ".join(sorted(NON_FIELD_ENV))} '
                                 '(plugin/config.py NON_FIELD_ENV)')
            try:
                setattr(obj, name, _coerce(prefix + name, fields_[name].type, value))
            except ValueError as e:
                raise ValueError(f'{e} (in environment variable {key})') from None
            sources[prefix + name] = f'environment variable {key}'

    # ------------------------------------------------------------------ output
    def to_dict(self) -> Dict[str, Any]:
        """Everything in force, safe to write anywhere: the judge key is named by its variable, never valued."""
        d = dataclasses.asdict(self)
        d['judge']['api_key_env'] = self.judge.api_key_env
        d['judge']['api_key_set'] = self.judge.api_key() is not None
        return d

    def save(self, output_dir: str | os.PathLike, name: str = 'awpo_config.json') -> Path:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / name
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + '\n')
        return path


# ---------------------------------------------------------------------- the process's config, loaded once
_loaded: Dict[tuple, AWPOConfig] = {}


def _load_key(env: Mapping[str, str]) -> tuple:
    """What the config in force depends on: the file ``$AWPO_CONFIG`` (resolved path, size, mtime) and every
    ``AWPO_*`` variable. A changed file or variable makes a new key, so a stale config is never served
    (a ``base:`` file named inside it is not stamped: it is read when the config is first loaded)."""
    path = env.get(CONFIG_ENV) or None
    stamp = None
    if path:
        p = Path(path).resolve()
        try:
            st = p.stat()
            stamp = (str(p), st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = (str(p), None, None)  # missing: load() raises its own error naming the file
    return stamp, tuple(sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIX)))


def load_config() -> AWPOConfig:
    """The config in force for this process (``$AWPO_CONFIG`` + ``AWPO_*``), loaded and validated once.

    The plugin's entry (``plugin/awpo.py``), the trainer and the reward classes all call this, so the file is
    read, validated and warned about once per process, and they all see the same object (read it, do not
    modify it). :meth:`AWPOConfig.load` stays the uncached loader (explicit path or environment)."""
    key = _load_key(os.environ)
    if key not in _loaded:
        _loaded.clear()  # one config per process: a changed environment replaces the old one
        _loaded[key] = AWPOConfig.load()
    return _loaded[key]


def clear_config_cache() -> None:
    """Forget the loaded config (tests that change the environment get a fresh one anyway, see ``_load_key``)."""
    _loaded.clear()
