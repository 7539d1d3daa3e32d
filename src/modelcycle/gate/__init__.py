"""The gate: a pure decision from two scores, a threshold and a policy. It touches nothing."""

from modelcycle.gate.choose import Candidate, Choice, choose
from modelcycle.gate.decide import Decision, Outcome, Policy, decide

__all__ = ["Candidate", "Choice", "Decision", "Outcome", "Policy", "choose", "decide"]
