"""Operations family: supply chains (and, alongside, IT operations and maintenance)."""

from envs.registration import register


def register_envs() -> None:
    """Register the operations environments (idempotent)."""
    register(
        "lepton/Inventory-v0",
        "envs.ops.inventory.env:InventoryEnv",
        vector_entry_point="envs.ops.inventory.env:InventoryVectorEnv",
        family="ops",
        description="Serial multi-echelon supply chain: order at every stage under stochastic demand.",
    )
    register(
        "lepton/InventoryORGym-v0",
        "envs.ops.inventory.env:InventoryEnv",
        vector_entry_point="envs.ops.inventory.env:InventoryVectorEnv",
        family="ops",
        kwargs={"scenario": "orgym"},
        description="OR-Gym InvManagement-v0 exactly (4 stages, 30 periods, backlog, discounted profit).",
    )
