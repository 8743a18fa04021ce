"""Glue between shiftlab's task presets and other trainers. Each submodule depends on its trainer at its
top (`shiftlab.integrations.trl` imports TRL and datasets), so this package itself imports none of
them: `import shiftlab.integrations` stays as light as the CLI."""
