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
        kwargs={"scenario": "orgym", "preset": "orgym"},
        description="OR-Gym InvManagement-v0 exactly (4 stages, 30 periods, backlog, discounted profit).",
    )
    register(
        "lepton/Maintenance-v0",
        "envs.ops.maintenance.env:MaintenanceEnv",
        vector_entry_point="envs.ops.maintenance.env:MaintenanceVectorEnv",
        family="ops",
        description="Five machines degrading by Markov chains: run, repair (crew-limited) or replace each.",
    )
    register(
        "lepton/MaintenanceSingle-v0",
        "envs.ops.maintenance.env:MaintenanceEnv",
        vector_entry_point="envs.ops.maintenance.env:MaintenanceVectorEnv",
        family="ops",
        kwargs={"scenario": "single", "preset": "single"},
        description="One degrading machine with run/repair/replace, exactly solvable by value iteration.",
    )
    register(
        "lepton/Autoscale-v0",
        "envs.ops.autoscale.env:AutoscaleEnv",
        vector_entry_point="envs.ops.autoscale.env:AutoscaleVectorEnv",
        family="ops",
        description="Autoscale a service's replicas under diurnal load: start-up delay, failures, M/M/c latency SLO.",
    )
    register(
        "lepton/AutoscaleCluster-v0",
        "envs.ops.autoscale.env:AutoscaleEnv",
        vector_entry_point="envs.ops.autoscale.env:AutoscaleVectorEnv",
        family="ops",
        kwargs={"scenario": "cluster3", "preset": "cluster3"},
        description="Autoscale three services with different rates, SLOs and prices on shared zones.",
    )
