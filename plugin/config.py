"""AWPO configuration: one dataclass, loaded from YAML/JSON plus ``AWPO_<FIELD>`` environment overrides.

ms-swift rejects unknown command-line flags, so AWPO's own hyper-parameters come from a file named by
``AWPO_CONFIG`` (or passed to :meth:`AWPOConfig.load`) and from environment variables::

    AWPO_CONFIG=configs/awpo.yaml AWPO_EPS_MIX=0.7 AWPO_GATING=0 swift rlhf ... --external_plugins plugin/awpo.py

The judge settings live in the file's ``judge:`` section (:class:`JudgeConfig`), with the environment
overrides ``AWPO_JUDGE_<FIELD>`` (e.g. ``AWPO_JUDGE_BASE_URL``, ``AWPO_JUDGE_MODEL``).
``AWPO_JUDGE_API_KEY`` is special: it is the key itself, read at call time and never stored in the config.

Pure Python (no torch, no ms-swift) so that any tool can read and validate a config.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

ENV_PREFIX = 'AWPO_'
JUDGE_ENV_PREFIX = 'AWPO_JUDGE_'
CONFIG_ENV = 'AWPO_CONFIG'
# Environment variables of ours that are not config fields (they hold values, not settings).
NON_FIELD_ENV = {'AWPO_CONFIG', 'AWPO_JUDGE_API_KEY', 'AWPO_SMOLLM2_DIR'}

_TRUE = {'1', 'true', 'yes', 'on'}
_FALSE = {'0', 'false', 'no', 'off'}


# judge.guided_json: how the judge asks the server for structured output (see plugin/judge.py).
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


def _apply(obj, values: Mapping[str, Any], where: str, prefix: str = '') -> None:
    known = {f.name: f for f in fields(obj)}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f'AWPO config: unknown key {prefix + key!r} in {where} '
                             f'(known: {", ".join(sorted(known))})')
        f = known[key]
        if f.name == 'judge':
            if not isinstance(value, Mapping):
                raise ValueError(f'AWPO config field {"judge"!r} in {where}: expected a mapping, got {value!r}')
            _apply(obj.judge, value, where, prefix='judge.')
            continue
        setattr(obj, key, _coerce(prefix + key, f.type, value))


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
    breaker_failures: int = 8        # consecutive failed requests that open the circuit breaker
    breaker_cooldown: float = 60.0   # seconds the breaker stays open before one probe request
    max_requests: Optional[int] = None  # per-run ceiling on judge requests (cost limit)
    max_total_tokens: Optional[int] = None  # per-run ceiling on tokens reported by the server
    reasoning_budget_chars: int = 6000  # the candidate's reasoning is cut to this length before judging
    snap_to_tier: bool = True        # snap an in-range score to the nearest rubric tier

    def validate(self) -> 'JudgeConfig':
        if self.backend not in ('auto', 'openai', 'rubric'):
            raise ValueError(f"AWPO config field 'judge.backend': must be auto, openai or rubric, got {self.backend!r}")
        self.guided_json = _coerce_dialect('judge.guided_json', self.guided_json)
        for name in ('concurrency', 'reasoning_budget_chars', 'breaker_failures', 'max_tokens'):
            if getattr(self, name) < 1:
                raise ValueError(f'AWPO config field {"judge." + name!r}: must be >= 1, got {getattr(self, name)}')
        for name in ('timeout', 'batch_deadline'):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f'AWPO config field {"judge." + name!r}: must be a positive number, got {v}')
        for name in ('max_retries', 'breaker_cooldown', 'temperature'):
            if getattr(self, name) < 0:
                raise ValueError(f'AWPO config field {"judge." + name!r}: must be >= 0, got {getattr(self, name)}')
        for name in ('max_requests', 'max_total_tokens'):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f'AWPO config field {"judge." + name!r}: must be >= 0 or null, got {v}')
        if self.backend == 'openai' and not self.base_url:
            raise ValueError("AWPO config field 'judge.base_url': required when judge.backend is 'openai' "
                             '(or set AWPO_JUDGE_BASE_URL)')
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
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    # ------------------------------------------------------------------ validation
    def validate(self) -> 'AWPOConfig':
        for name in ('eps_std', 'eps_mix', 'r_out_max', 'tau_low', 'tau_high', 'alpha_base', 'alpha_prio',
                     'eps_min', 'eps_max', 'adv_eps'):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f'AWPO config field {name!r}: must be a finite number, got {v!r}')
        for name in ('eps_std', 'eps_mix', 'eps_min', 'eps_max', 'adv_eps'):
            if getattr(self, name) < 0:
                raise ValueError(f'AWPO config field {name!r}: must be >= 0, got {getattr(self, name)}')
        if self.eps_std <= 0:
            raise ValueError(f"AWPO config field 'eps_std': must be > 0 (Eq. 24), got {self.eps_std}")
        if self.adv_eps <= 0:
            raise ValueError(f"AWPO config field 'adv_eps': must be > 0 (Eq. 26), got {self.adv_eps}")
        if self.tau_low >= self.tau_high:
            raise ValueError(f"AWPO config field 'tau_low': must be < tau_high, got tau_low={self.tau_low} "
                             f'tau_high={self.tau_high}')
        if self.alpha_base <= 0:
            raise ValueError(f"AWPO config field 'alpha_base': must be > 0 (Eq. 27), got {self.alpha_base}")
        if self.alpha_prio <= self.alpha_base:
            raise ValueError(f"AWPO config field 'alpha_prio': must be > alpha_base, got alpha_prio="
                             f'{self.alpha_prio} alpha_base={self.alpha_base}')
        if self.eps_min > self.eps_max:
            raise ValueError(f"AWPO config field 'eps_min': must be <= eps_max, got eps_min={self.eps_min} "
                             f'eps_max={self.eps_max}')
        if self.eps_max >= 1:
            raise ValueError(f"AWPO config field 'eps_max': a clip radius must be < 1, got {self.eps_max}")
        for name in ('gating', 'difficulty', 'dynamic_clip'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'AWPO config field {name!r}: must be a boolean, got {getattr(self, name)!r}')
        self.judge.validate()
        return self

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = 'dict') -> 'AWPOConfig':
        cfg = cls()
        _apply(cfg, values, where)
        return cfg.validate()

    @classmethod
    def load(cls, path: Optional[str | os.PathLike] = None,
             env: Optional[Mapping[str, str]] = None) -> 'AWPOConfig':
        """Defaults <- YAML/JSON file (``path`` or ``$AWPO_CONFIG``) <- ``AWPO_<FIELD>`` env overrides."""
        env = os.environ if env is None else env
        cfg = cls()
        path = path if path is not None else env.get(CONFIG_ENV) or None
        if path:
            p = Path(path)
            if not p.is_file():
                raise ValueError(f'AWPO config: file not found: {p}')
            text = p.read_text()
            if p.suffix.lower() == '.json':
                data = json.loads(text) if text.strip() else {}
            else:
                import yaml
                data = yaml.safe_load(text) or {}
            if not isinstance(data, Mapping):
                raise ValueError(f'AWPO config: {p} must hold a mapping at top level, got {type(data).__name__}')
            # Accept a file whose AWPO settings sit under an `awpo:` key (so one file can serve several tools).
            if set(data) == {'awpo'} and isinstance(data['awpo'], Mapping):
                data = data['awpo']
            _apply(cfg, data, str(p))
        cfg._apply_env(env)
        return cfg.validate()

    def _apply_env(self, env: Mapping[str, str]) -> None:
        top = {f.name: f for f in fields(self) if f.name != 'judge'}
        judge = {f.name: f for f in fields(self.judge)}
        for key, value in env.items():
            if not key.startswith(ENV_PREFIX) or key in NON_FIELD_ENV:
                continue
            if key.startswith(JUDGE_ENV_PREFIX):
                name = key[len(JUDGE_ENV_PREFIX):].lower()
                if name not in judge:
                    raise ValueError(f'AWPO config: unknown environment variable {key} '
                                     f'(judge fields: {", ".join(sorted(judge))})')
                setattr(self.judge, name, _coerce('judge.' + name, judge[name].type, value))
            else:
                name = key[len(ENV_PREFIX):].lower()
                if name not in top:
                    raise ValueError(f'AWPO config: unknown environment variable {key} '
                                     f'(fields: {", ".join(sorted(top))})')
                setattr(self, name, _coerce(name, top[name].type, value))

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
