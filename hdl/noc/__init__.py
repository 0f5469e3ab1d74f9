"""The mesh network-on-chip: topology/routing/deadlock check in plain Python (``topology``), one
file per router stage (``input_unit``, ``route_compute``, ``vc_allocator``,
``switch_allocator``, ``crossbar``, ``output_unit``), the router (``router``), the network
interface (``interface``) and the mesh (``mesh``). See docs/noc.md."""
