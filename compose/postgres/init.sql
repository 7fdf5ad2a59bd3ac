-- One database per SQL service, owned by the mesh role (POSTGRES_USER). The postgres image
-- runs this once, when its data directory is empty. Each service migrates its own schema.
CREATE DATABASE mesh_users;
CREATE DATABASE mesh_catalog;
CREATE DATABASE mesh_orders;
CREATE DATABASE mesh_courses;
CREATE DATABASE mesh_analytics;
