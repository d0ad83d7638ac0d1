"""Talk spurts and conversation shape: who talks when, from packets (and G.711 energy)."""
