/** The plugin's name: plugin.yaml `metadata.name`, and what Applications put in `spec.source.plugin.name`. */
export const DEFAULT_PLUGIN_NAME = 'lattice';
