"""PrepaidGuard: supervision of prepaid tuition held in escrow."""
