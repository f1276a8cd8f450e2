//! Which node each client connects to. `--url` may list several servers (the nodes of one
//! cluster); `--publisher-nodes` and `--subscriber-nodes` pick the nodes each kind of client
//! is spread over, round-robin: client i goes to the (i mod n)-th node of its list.

use std::fmt;
use std::str::FromStr;

/// The nodes one kind of client is spread over: all of them (the default), or 1-based node
/// numbers and ranges into the `--url` list, comma-separated (`2`, `1-2`, `1,3`, `3,1-2`),
/// in the order the round-robin visits them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSet {
    /// 0-based node indices in the order given; empty for all nodes.
    listed: Vec<usize>,
    /// As given, for messages.
    spec: String,
}

/// Why a `--publisher-nodes` / `--subscriber-nodes` value is not a node list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeSetError {
    /// An item of the list is empty (`""`, `1,,2`).
    #[error("empty node number (give e.g. 2, 1-3 or 1,3)")]
    Empty,
    /// An item is neither a number nor a range of two.
    #[error("'{0}' is not a node number or range (give e.g. 2, 1-3 or 1,3)")]
    NotANode(String),
    /// Node 0: nodes are counted from 1, as the `--url` list reads.
    #[error("nodes are numbered from 1 (the first URL of --url is node 1)")]
    Zero,
    /// A range whose end comes before its start.
    #[error("range {from}-{to} runs backwards")]
    Backwards {
        /// Its first node.
        from: usize,
        /// Its last node.
        to: usize,
    },
    /// A node given twice: round-robin would favour it, which is rarely meant.
    #[error("node {0} is listed twice")]
    Twice(usize),
}

impl FromStr for NodeSet {
    type Err = NodeSetError;

    fn from_str(spec: &str) -> Result<NodeSet, NodeSetError> {
        let mut listed = Vec::new();
        for item in spec.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(NodeSetError::Empty);
            }
            let (from, to) = match item.split_once('-') {
                Some((from, to)) => (node_number(from, item)?, node_number(to, item)?),
                None => {
                    let node = node_number(item, item)?;
                    (node, node)
                }
            };
            if to < from {
                return Err(NodeSetError::Backwards { from, to });
            }
            for node in from..=to {
                if listed.contains(&(node - 1)) {
                    return Err(NodeSetError::Twice(node));
                }
                listed.push(node - 1);
            }
        }
        Ok(NodeSet {
            listed,
            spec: spec.to_owned(),
        })
    }
}

/// A 1-based node number of `item`.
fn node_number(number: &str, item: &str) -> Result<usize, NodeSetError> {
    match number.trim().parse::<usize>() {
        Ok(0) => Err(NodeSetError::Zero),
        Ok(node) => Ok(node),
        Err(_) => Err(NodeSetError::NotANode(item.to_owned())),
    }
}

impl NodeSet {
    /// Every node, in `--url` order.
    pub fn all() -> NodeSet {
        NodeSet::default()
    }

    /// The 0-based nodes of `nodes` in all this set names, in round-robin order.
    fn resolve(&self, role: &'static str, nodes: usize) -> Result<Vec<usize>, PlacementError> {
        if self.listed.is_empty() {
            return Ok((0..nodes).collect());
        }
        match self.listed.iter().find(|&&node| node >= nodes) {
            Some(&missing) => Err(PlacementError::NoSuchNode {
                role,
                spec: self.spec.clone(),
                node: missing + 1,
                nodes,
            }),
            None => Ok(self.listed.clone()),
        }
    }
}

/// Why clients cannot be placed on the nodes given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A node list names a node beyond the `--url` list.
    #[error(
        "--{role}-nodes {spec}: there is no node {node} (nodes are 1 to {nodes}, one per --url)"
    )]
    NoSuchNode {
        /// `publisher` or `subscriber`.
        role: &'static str,
        /// The list as given.
        spec: String,
        /// The first node (1-based) it names that does not exist.
        node: usize,
        /// How many nodes there are.
        nodes: usize,
    },
    /// No node at all (an empty `--url` list).
    #[error("no server URL to connect to")]
    NoNodes,
}

/// Every client's node: publisher i on `publisher(i)`, subscriber i on `subscriber(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Base URL of each node.
    urls: Vec<String>,
    /// 0-based node of each publisher.
    publishers: Vec<usize>,
    /// 0-based node of each subscriber.
    subscribers: Vec<usize>,
}

impl Placement {
    /// Spreads `publishers` over `publisher_nodes` and `subscribers` over `subscriber_nodes`
    /// of the nodes at `urls`, round-robin.
    pub fn new(
        urls: &[String],
        publishers: (usize, &NodeSet),
        subscribers: (usize, &NodeSet),
    ) -> Result<Placement, PlacementError> {
        if urls.is_empty() {
            return Err(PlacementError::NoNodes);
        }
        let spread = |role, (clients, set): (usize, &NodeSet)| {
            let nodes = set.resolve(role, urls.len())?;
            Ok::<_, PlacementError>((0..clients).map(|i| nodes[i % nodes.len()]).collect())
        };
        Ok(Placement {
            urls: urls.to_vec(),
            publishers: spread("publisher", publishers)?,
            subscribers: spread("subscriber", subscribers)?,
        })
    }

    /// How many nodes there are.
    pub fn nodes(&self) -> usize {
        self.urls.len()
    }

    /// Publisher `index`'s node (0-based). Panics unless `index` < the publishers placed.
    pub fn publisher(&self, index: usize) -> usize {
        self.publishers[index]
    }

    /// Subscriber `index`'s node (0-based). Panics unless `index` < the subscribers placed.
    pub fn subscriber(&self, index: usize) -> usize {
        self.subscribers[index]
    }
}

/// One line per node: `node 1 ws://host:port: publishers 0, 2; subscribers 0, 3`.
impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (node, url) in self.urls.iter().enumerate() {
            if node > 0 {
                writeln!(f)?;
            }
            let on_node = |clients: &[usize]| -> Vec<String> {
                (0..clients.len())
                    .filter(|&i| clients[i] == node)
                    .map(|i| i.to_string())
                    .collect()
            };
            let groups: Vec<String> = [
                ("publishers", on_node(&self.publishers)),
                ("subscribers", on_node(&self.subscribers)),
            ]
            .into_iter()
            .filter(|(_, clients)| !clients.is_empty())
            .map(|(role, clients)| format!("{role} {}", clients.join(", ")))
            .collect();
            let groups = match groups.is_empty() {
                true => "no clients".to_owned(),
                false => groups.join("; "),
            };
            write!(f, "node {} {url}: {groups}", node + 1)?;
        }
        Ok(())
    }
}

/// A `--url` item: a `ws://` or `wss://` base URL with a host.
pub fn parse_base_url(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("'{url}' is not a URL (give ws://host:port, comma-separated)"))?;
    if !matches!(uri.scheme_str(), Some("ws" | "wss")) {
        return Err(format!("'{url}' is not a ws:// or wss:// URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{url}' has no host"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(count: usize) -> Vec<String> {
        (1..=count).map(|n| format!("ws://127.0.0.1:{n}")).collect()
    }

    fn set(spec: &str) -> NodeSet {
        spec.parse().expect(spec)
    }

    #[test]
    fn node_lists_parse_to_zero_based_nodes_in_the_order_given() {
        for (spec, nodes) in [
            ("2", vec![1]),
            ("1-3", vec![0, 1, 2]),
            ("1,3", vec![0, 2]),
            ("3, 1-2", vec![2, 0, 1]),
            ("2-2", vec![1]),
        ] {
            assert_eq!(set(spec).listed, nodes, "{spec}");
        }
    }

    #[test]
    fn bad_node_lists_are_refused_with_the_reason() {
        for (spec, error) in [
            ("", NodeSetError::Empty),
            ("1,,2", NodeSetError::Empty),
            ("0", NodeSetError::Zero),
            ("0-2", NodeSetError::Zero),
            ("3-1", NodeSetError::Backwards { from: 3, to: 1 }),
            ("1-2,2", NodeSetError::Twice(2)),
            ("x", NodeSetError::NotANode("x".into())),
            ("1-", NodeSetError::NotANode("1-".into())),
            ("1-2-3", NodeSetError::NotANode("1-2-3".into())),
            ("-1", NodeSetError::NotANode("-1".into())),
        ] {
            assert_eq!(spec.parse::<NodeSet>(), Err(error), "{spec}");
        }
    }

    #[test]
    fn clients_go_round_robin_over_their_nodes() {
        // The topology: publishers over nodes 1-2, subscribers over nodes 1-3.
        let placement = Placement::new(&urls(3), (5, &set("1-2")), (7, &set("1-3"))).unwrap();
        let publishers: Vec<usize> = (0..5).map(|i| placement.publisher(i)).collect();
        let subscribers: Vec<usize> = (0..7).map(|i| placement.subscriber(i)).collect();
        assert_eq!(publishers, [0, 1, 0, 1, 0]);
        assert_eq!(subscribers, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(
            placement.to_string(),
            "node 1 ws://127.0.0.1:1: publishers 0, 2, 4; subscribers 0, 3, 6\n\
             node 2 ws://127.0.0.1:2: publishers 1, 3; subscribers 1, 4\n\
             node 3 ws://127.0.0.1:3: subscribers 2, 5"
        );
        let listed = Placement::new(&urls(3), (2, &set("3,1")), (1, &NodeSet::all())).unwrap();
        assert_eq!((listed.publisher(0), listed.publisher(1)), (2, 0));
        assert!(
            listed.to_string().ends_with(
                "node 2 ws://127.0.0.1:2: no clients\nnode 3 ws://127.0.0.1:3: publishers 0"
            ),
            "{listed}"
        );
    }

    #[test]
    fn the_default_puts_everyone_on_a_single_node() {
        let placement =
            Placement::new(&urls(1), (5, &NodeSet::all()), (5, &NodeSet::all())).unwrap();
        assert!((0..5).all(|i| placement.publisher(i) == 0 && placement.subscriber(i) == 0));
        assert_eq!(placement.nodes(), 1);
    }

    #[test]
    fn nodes_beyond_the_url_list_are_refused_naming_the_flag() {
        let refused = Placement::new(&urls(2), (1, &NodeSet::all()), (3, &set("1-3")));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "--subscriber-nodes 1-3: there is no node 3 (nodes are 1 to 2, one per --url)"
        );
        let refused = Placement::new(&urls(1), (1, &set("2")), (1, &NodeSet::all()));
        assert!(matches!(
            refused,
            Err(PlacementError::NoSuchNode {
                role: "publisher",
                node: 2,
                nodes: 1,
                ..
            })
        ));
        assert_eq!(
            Placement::new(&[], (1, &NodeSet::all()), (1, &NodeSet::all())),
            Err(PlacementError::NoNodes)
        );
    }

    #[test]
    fn base_urls_must_be_websocket_urls_with_a_host() {
        for good in [
            "ws://127.0.0.1:8080",
            "wss://example.com/big",
            "ws://[::1]:1",
        ] {
            assert_eq!(parse_base_url(good).as_deref(), Ok(good));
        }
        for (bad, why) in [
            ("http://127.0.0.1:1", "not a ws:// or wss://"),
            ("127.0.0.1:8080", "not a ws:// or wss://"),
            ("", "not a URL"),
            ("ws://", "not a URL"),
        ] {
            let refused = parse_base_url(bad).unwrap_err();
            assert!(refused.contains(why), "{bad}: {refused}");
        }
    }
}
