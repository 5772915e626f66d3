"""A toy tool-use task for the estimator study: prompts, candidate answers, outcome reward, judges.

Every prompt has M candidate answers of four kinds (the layout of one prompt, index order):

    kind        count     S_format  S_exec         R_out = S_format + S_exec (Eq. 14)   reasoning q
    correct     1         1         1              2                                     U(0.75, 1.00)
    near-miss   n_near    1         0.5 or 0.75    1.5 or 1.75 (right tool, a wrong value) U(0.60, 0.95)
    wrong       n_wrong   1         0              1 (wrong tool)                         U(0.00, 0.70)
    malformed   the rest  0         0              0 (no parseable call)                  U(0.00, 0.50)

The S_exec values are what Eqs. 16-19 give a one-call gold answer with two parameters
((r_name + r_para + r_value) / (1 + 1 + 2)): both values wrong 0.5, one wrong 0.75; wrong tool 0.

Answers are described by feature vectors phi = [format_ok, q, xi_1..xi_n] (xi: "style" features, N(0, 1),
unrelated to reward). The policy is a linear softmax over these features with weights theta SHARED by
every prompt, plus one tabular logit per (training prompt, answer):

    logit(p, a) = phi(p, a) . theta + b(p, a)

so, as in an LLM, what is learnt on one prompt moves the others (theta), and each prompt also has its
own specifics (b). Partial credit for a good-reasoning near-miss raises theta_q, hence the probability of
every high-q answer, the correct ones included; a tabular policy alone could not carry that signal.

The judge scores reasoning quality q into [0, 1], snapped to the rubric's tiers (plugin.judge_prompt.TIERS):

    J = snap(clip(0.5 + slope * (q - 0.5) + style * xi_1 + noise * eps, 0, 1)),  eps ~ N(0, 1)

or J ~ U(0, 1) for the pure-noise judge. eps is drawn once per (prompt, answer): the repo's judge is greedy
(temperature 0) and cached, so its errors are persistent, not re-drawn at every call.

The ``insight`` judge (issue 22) knows something the outcome reward does not and nothing that contradicts it:
like the paper's judge it sees the reference answer, so it never ranks a call above a better one by R_out
(correct 1, near-miss 0.9, malformed 0), and among wrong-tool calls, which the outcome reward scores alike
(R_out = 1), it ranks by how much of the reasoning would transfer to the correct answer, q (the feature the
correct answers share):  J = snap(clip(q + noise * eps, 0, 0.75)) there. It is the judge a gate that lets the judge into
groups without outcome spread (all wrong) has the most to gain from.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from plugin.judge_prompt import TIERS


@dataclass(frozen=True)
class JudgeLevel:
    """One judge: J = snap(clip(0.5 + slope (q - 0.5) + style xi_1 + noise eps)), or U(0, 1) if uniform."""
    name: str
    slope: float = 1.0
    noise: float = 0.1
    style: float = 0.0
    uniform: bool = False
    insight: bool = False  # the outcome-consistent judge that ranks wrong calls by q (module docstring)
    what: str = ''


JUDGE_LEVELS = {
    'good': JudgeLevel('good', slope=1.0, noise=0.1, what='tracks reasoning quality, small noise'),
    'noisy': JudgeLevel('noisy', slope=1.0, noise=0.4, what='tracks quality under large persistent noise'),
    'biased': JudgeLevel('biased', slope=1.0, noise=0.1, style=0.3,
                         what='tracks quality but also rewards a style feature (xi_1, "verbosity")'),
    'pure_noise': JudgeLevel('pure_noise', slope=0.0, uniform=True, what='U(0, 1), independent of the answer'),
    'adversarial': JudgeLevel('adversarial', slope=-1.0, noise=0.1, what='prefers bad reasoning (wrong answers)'),
    'insight': JudgeLevel('insight', noise=0.1, insight=True,
                          what='agrees with R_out and ranks wrong calls by transferable reasoning q'),
}


@dataclass(frozen=True)
class EnvConfig:
    n_train: int = 128        # training prompts
    n_heldout: int = 256      # held-out prompts (shared weights only: no tabular logit)
    n_answers: int = 16       # candidates per prompt
    n_near: int = 2
    n_wrong: int = 11         # the remaining n_answers - 1 - n_near - n_wrong are malformed
    n_style: int = 4          # style features xi
    init_format: float = 2.0  # initial theta_format: a warm start that mostly writes well-formed calls
    init_style: float = 1.5   # std of the initial theta_style: peaked per-prompt preferences unrelated to
    #                           reward, so at the start ~40 % of groups sample one kind of wrong call only
    #                           (no outcome spread: sparse), and at the end groups saturate at R_out = 2


@dataclass
class Env:
    """One seed's task. Tensors [P, M] (features [P, M, D]) for the train and held-out prompt sets."""
    phi: torch.Tensor
    r_out: torch.Tensor
    correct: torch.Tensor
    q: torch.Tensor
    style1: torch.Tensor
    eps: torch.Tensor        # persistent judge noise N(0, 1)
    uni: torch.Tensor        # persistent U(0, 1) for the pure-noise judge
    phi_eval: torch.Tensor
    r_out_eval: torch.Tensor
    correct_eval: torch.Tensor
    theta0: torch.Tensor     # [D] initial shared weights

    def judge(self, level: JudgeLevel) -> torch.Tensor:
        return judge_scores(level, self.q, self.style1, self.eps, self.uni, self.r_out)


def snap(x: torch.Tensor) -> torch.Tensor:
    """Nearest rubric tier, vectorised; a tie goes to the lower tier (as plugin.judge_prompt.snap_to_tier)."""
    tiers = torch.tensor(TIERS, dtype=x.dtype)
    dist = (x[..., None] - tiers).abs()
    return tiers[dist.argmin(dim=-1)]  # argmin returns the first (lower) tier on a tie


def judge_scores(level: JudgeLevel, q, style1, eps, uni, r_out=None) -> torch.Tensor:
    if level.uniform:
        return snap(uni)
    if level.insight:  # R_out 2 = correct, 1.5 / 1.75 = near-miss, 1 = wrong tool, 0 = malformed
        wrong = snap((q + level.noise * eps).clamp(0.0, 0.75))
        return torch.where(r_out >= 2.0, 1.0, torch.where(r_out >= 1.5, 0.9, torch.where(r_out >= 1.0, wrong, 0.0)))
    raw = 0.5 + level.slope * (q - 0.5) + level.style * style1 + level.noise * eps
    return snap(raw.clamp(0.0, 1.0))


def _prompts(n: int, cfg: EnvConfig, gen: torch.Generator):
    M = cfg.n_answers
    n_mal = M - 1 - cfg.n_near - cfg.n_wrong
    if n_mal < 0:
        raise ValueError(f'EnvConfig: 1 + n_near + n_wrong = {1 + cfg.n_near + cfg.n_wrong} exceeds n_answers={M}')
    kinds = torch.tensor([0] + [1] * cfg.n_near + [2] * cfg.n_wrong + [3] * n_mal).expand(n, M)
    u = torch.rand(n, M, generator=gen)
    lo = torch.tensor([0.75, 0.60, 0.0, 0.0])[kinds]
    hi = torch.tensor([1.00, 0.95, 0.70, 0.50])[kinds]
    q = lo + (hi - lo) * u
    coin = torch.rand(n, M, generator=gen) < 0.5
    exec_ = torch.where(kinds == 0, 1.0, torch.where(kinds == 1, torch.where(coin, 0.5, 0.75),
                                                     0.0))
    fmt = (kinds != 3).float()
    r_out = fmt + exec_                                           # Eq. 14
    style = torch.randn(n, M, cfg.n_style, generator=gen)
    phi = torch.cat([fmt[..., None], q[..., None], style], dim=-1)
    return phi, r_out, kinds == 0, q, style[..., 0]


def make_env(seed: int, cfg: EnvConfig = EnvConfig()) -> Env:
    """The task of one seed (train + held-out prompts, persistent judge noise, initial weights)."""
    gen = torch.Generator().manual_seed(int(seed))
    phi, r_out, correct, q, style1 = _prompts(cfg.n_train, cfg, gen)
    phi_e, r_out_e, correct_e, _, _ = _prompts(cfg.n_heldout, cfg, gen)
    eps = torch.randn(cfg.n_train, cfg.n_answers, generator=gen)
    uni = torch.rand(cfg.n_train, cfg.n_answers, generator=gen)
    theta0 = torch.cat([torch.tensor([cfg.init_format, 0.0]), cfg.init_style * torch.randn(cfg.n_style, generator=gen)])
    return Env(phi, r_out, correct, q, style1, eps, uni, phi_e, r_out_e, correct_e, theta0)
