-- The host application's own tables. extschema never alters them. Plugins reference them as core.<table>.
CREATE TABLE work_orders (
    id INTEGER PRIMARY KEY,
    title VARCHAR(200) NOT NULL,
    state VARCHAR(20) NOT NULL DEFAULT 'open'
);
CREATE TABLE equipment (
    id INTEGER PRIMARY KEY,
    serial_number VARCHAR(64) NOT NULL UNIQUE,
    name VARCHAR(200) NOT NULL
);
