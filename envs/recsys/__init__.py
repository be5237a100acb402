"""Recommendation family: slate recommendation to user sessions (RecSim-style dynamics)."""

from envs.registration import register


def register_envs() -> None:
    """Register the recommendation environments (idempotent)."""
    register(
        "lepton/RecSlate-v0",
        "envs.recsys.env:RecSlateEnv",
        vector_entry_point="envs.recsys.env:RecSlateVectorEnv",
        family="recsys",
        description="Slate recommendation: drifting topic interests, time budget, MNL choice.",
    )
    register(
        "lepton/RecLongTerm-v0",
        "envs.recsys.env:RecSlateEnv",
        vector_entry_point="envs.recsys.env:RecSlateVectorEnv",
        family="recsys",
        kwargs={"scenario": "long_term", "preset": "long_term"},
        description="Clickbait against quality: myopic engagement drives users away.",
    )
    register(
        "lepton/RecMovieLens-v0",
        "envs.recsys.env:RecSlateEnv",
        vector_entry_point="envs.recsys.env:RecSlateVectorEnv",
        family="recsys",
        kwargs={"scenario": "movielens", "preset": "movielens"},
        description="Items and user profiles fitted from MovieLens ratings (needs extra `data`).",
    )
    register(
        "lepton/RecSimIE-v0",
        "envs.recsys.env:RecSlateEnv",
        vector_entry_point="envs.recsys.env:RecSlateVectorEnv",
        family="recsys",
        kwargs={"scenario": "recsim_ie", "preset": "recsim_ie"},
        description="RecSim interest_evolution defaults (20 topics, slate of 2 from 10), comparable.",
    )
