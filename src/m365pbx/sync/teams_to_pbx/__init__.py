"""Teams → PBX: presence from Graph (webhooks, polling, reconciliation) into the hub."""
