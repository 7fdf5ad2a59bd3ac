-- One database per SQL service for the mesh user (MYSQL_USER). The mysql image runs this once,
-- as root, when its data directory is empty. Each service migrates its own schema.
CREATE DATABASE IF NOT EXISTS mesh_users;
CREATE DATABASE IF NOT EXISTS mesh_catalog;
CREATE DATABASE IF NOT EXISTS mesh_orders;
CREATE DATABASE IF NOT EXISTS mesh_courses;
CREATE DATABASE IF NOT EXISTS mesh_analytics;
GRANT ALL PRIVILEGES ON mesh_users.* TO 'mesh'@'%';
GRANT ALL PRIVILEGES ON mesh_catalog.* TO 'mesh'@'%';
GRANT ALL PRIVILEGES ON mesh_orders.* TO 'mesh'@'%';
GRANT ALL PRIVILEGES ON mesh_courses.* TO 'mesh'@'%';
GRANT ALL PRIVILEGES ON mesh_analytics.* TO 'mesh'@'%';
