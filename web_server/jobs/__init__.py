"""Background jobs: the scheduler, leader election, and the jobs themselves (thin boundaries)."""
