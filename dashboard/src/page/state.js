// What the page knows: the token, the sessions as the live feed last told them, the view.

export const state = {
  token: null,
  sessions: new Map(), // id -> session object, as the live feed last told us
  problems: [],
  loaded: false, // a snapshot has arrived at least once
  view: { name: "sessions", id: null },
  events: { gen: 0, abort: null, timer: null, backoff: 1000 },
  screen: { gen: 0, timer: null, text: null },
  flashTimer: null,
};
