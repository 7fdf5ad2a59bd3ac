"""The runtime every process of the mesh shares."""
