"""GPIoT role-model tuning: per-role LoRA and PECT co-tuning of TD and CG on one frozen base.

`gpiot train` (TypeScript) runs `python -m gpiot_training train --config FILE` and reads the JSON
lines it prints on stdout (see events.py); everything else it prints goes to stderr.
"""

__version__ = "0.1.0"
