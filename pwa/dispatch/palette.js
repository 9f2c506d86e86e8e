// Marker colours of the dispatcher map: fill by status, ring by SLA state (amber at risk, red overdue).

export const STATUS_COLOURS = {
  registered: "#78909c",
  routed: "#1e88e5",
  unrouted: "#8e24aa",
  assigned: "#3949ab",
  accepted: "#00897b",
  en_route: "#00acc1",
  on_site: "#2e7d32",
  resolved: "#7cb342",
  verified: "#9e9d24",
  reopened: "#d81b60",
};

export const SLA_RING = {
  breached: { color: "#d50000", weight: 3.5 },
  at_risk: { color: "#ffa000", weight: 3.5 },
  on_time: { color: "#ffffff", weight: 1.5 },
  none: { color: "#ffffff", weight: 1.5 },
};

/** Leaflet path style for an appeal marker. */
export function markerStyle(status, sla) {
  const ring = SLA_RING[sla] || SLA_RING.none;
  return {
    radius: 7,
    fillColor: STATUS_COLOURS[status] || "#607d8b",
    fillOpacity: 0.95,
    color: ring.color,
    weight: ring.weight,
    opacity: 1,
  };
}
