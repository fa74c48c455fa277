"""`make cost`: the idle floor per profile and the infra cost per conversation (docs/cost.md)."""
