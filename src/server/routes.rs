//! The game's routes: each GET logs one event and answers with the seed's text.

/// One game action: its path, the event it logs and the text the player sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// URL path.
    pub path: &'static str,
    /// `event_type` of the logged event.
    pub event_type: &'static str,
    /// Response body.
    pub body: &'static str,
}

/// The routes of the seed's `game_api.py`, plus the knife and guild actions.
pub const ACTIONS: [Action; 7] = [
    Action {
        path: "/",
        event_type: "default",
        body: "\nThis is the default response!\n",
    },
    Action {
        path: "/purchase_a_sword",
        event_type: "purchase_sword",
        body: "\nSword Purchased!\n",
    },
    Action {
        path: "/purchase_a_shield",
        event_type: "purchase_shield",
        body: "\nShield Purchased!\n",
    },
    Action {
        path: "/purchase_a_knife",
        event_type: "purchase_knife",
        body: "\nKnife Purchased!\n",
    },
    Action {
        path: "/upgrade_a_sword",
        event_type: "upgrade_sword",
        body: "\nSword Upgraded!\n",
    },
    Action {
        path: "/upgrade_a_shield",
        event_type: "upgrade_shield",
        body: "\nShield Upgraded!\n",
    },
    Action {
        path: "/join_a_guild",
        event_type: "join_guild",
        body: "\nGuild Joined!\n",
    },
];
