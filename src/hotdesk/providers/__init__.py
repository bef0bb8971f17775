"""Platform drivers: the contract, the registry, the guard and one package per platform."""
