//! Erlang node names, shared by the brokers that run on the Erlang VM (RabbitMQ, ejabberd).

/// A node name as the topology names it: `rabbit@r2` -> `r2`.
pub fn node_name(erlang: &str) -> String {
    erlang
        .split_once('@')
        .map_or(erlang, |(_, host)| host)
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_part_names_the_node() {
        assert_eq!(super::node_name("rabbit@r2"), "r2");
        assert_eq!(super::node_name("ejabberd@e1"), "e1");
        assert_eq!(super::node_name("plain"), "plain");
    }
}
