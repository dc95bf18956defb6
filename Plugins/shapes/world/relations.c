/* Plugins/shapes/world/relations.c: GenEval's position rule (world.py `relative_position`),
 * on its own so that a judge can share the benchmark's rule without the checker's
 * detection code. IEEE double in world.py's operation order: box edges are multiples of
 * 0.5, offsets of 0.25, so the norm's squared sum is exact. */
#include "world.h"

#include <math.h>

static double sign(double v) {
   return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0;
}

unsigned sw_relations(const double a[4], const double b[4]) {
   const double cax = (a[0] + a[2]) / 2, cay = (a[1] + a[3]) / 2;
   const double cbx = (b[0] + b[2]) / 2, cby = (b[1] + b[3]) / 2;
   const double dax = a[2] - a[0], day = a[3] - a[1];
   const double dbx = b[2] - b[0], dby = b[3] - b[1];
   const double offx = cax - cbx, offy = cay - cby;
   double rx = fabs(offx) - 0.1 * (dax + dbx);
   double ry = fabs(offy) - 0.1 * (day + dby);
   rx = (rx > 0 ? rx : 0) * sign(offx);
   ry = (ry > 0 ? ry : 0) * sign(offy);
   if (fabs(rx) < 1e-3 && fabs(ry) < 1e-3)
      return 0;
   const double norm = sqrt(offx * offx + offy * offy);
   const double dx = rx / norm, dy = ry / norm;
   unsigned rel = 0;
   if (dx < -0.5)
      rel |= 1u << SW_LEFT_OF;
   if (dx > 0.5)
      rel |= 1u << SW_RIGHT_OF;
   if (dy < -0.5)
      rel |= 1u << SW_ABOVE;
   if (dy > 0.5)
      rel |= 1u << SW_BELOW;
   return rel;
}
