"""The workflows' YAML configs. This folder ships inside the package as ``common.configs`` (pyproject's
package-dir), so an installed wheel runs the same reference configs as a checkout."""
