/* Plugins/shapes/world/reflect.c: ReflectionFlow-style edit instructions from a check
 * result (shapes-reflector).
 *
 * Every detection is assigned: the first `count` detections matching a group are "kept";
 * further matches are "extra" (must go when the group has an exact count, optional
 * otherwise); detections matching no group are "free". Then, group by group:
 *   missing objects (found < count):
 *     1. an extra/free object of the right shape but another colour is recoloured:
 *        "Make the blue triangle yellow."        (negative prompt "a blue triangle")
 *     2. a free object (or one another exact group has too many of) of the right colour
 *        (any colour when the group names none) but another shape is reshaped:
 *        "Turn the red square into a circle." ("one"/"another" instead of "the" when the
 *        image has several such objects; "Turn two red squares into circles.")
 *     3. the rest is added: "Add a red circle." / "Add one more red circle." /
 *        "Add two more red circles."
 *   too many (exact count, found > count, not used above):
 *        "Remove the extra blue square." / "Remove the two extra blue squares."
 *        (negative prompt: the count found, e.g. "three blue squares", when it is <= 4)
 *   a failed relation: "Move the red circle to the left of the blue square." (both objects
 *        exist) or "Place the red circle to the left of the blue square." (one is missing);
 *        negative prompt: the relation seen between the first candidate pair, written with
 *        the same relation word and the objects swapped when it is the opposite one
 *        ("a blue square left of a red circle"), else with the seen relation.
 * Negative prompts only name objects that no group of the prompt asks for, and are always
 * captions of the grammar (the model's tokenizer takes nothing else): the first candidate,
 * joined with the second by "and" when the result parses.
 * revised_prompt: the prompt in canonical form; a single "a X" group the image drew more
 * than once becomes "one X" (an exact count the grammar accepts). It always parses.
 * A passing image: {"feedback":"The image matches the prompt.", ...} without a negative.
 *
 * Several views of one trajectory (sw_reflect_views_json, SF2's visual reflection): the
 * feedback and revised prompt are those of the primary view (the finished sketch or final
 * image: the most complete). The negative prompt should name what the trajectory will keep,
 * so each negative candidate of the primary view is kept only when the preview (the blurry
 * decoded x0-prediction) shows it too: the same wrong object, the same excess, the same wrong
 * relation (preview_shows). The preview is trusted on colours and layout only: its objects
 * are known by colour where the colour tells them apart, else by shape with ambiguous blobs
 * counting as every shape they may be (blur hides shape first). A preview that shows none of them drops the negative prompt (the
 * defect belongs to the cheap finish, not the trajectory; naming it would steer away from
 * nothing) and reports it as "unconfirmed_negative"; an unreadable preview (the checker finds
 * no object in it) is ignored, and the primary's negative prompt stands alone. */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const count_words[5] = {"no", "one", "two", "three", "four"};

static const char *number(int n, char *tmp, size_t size) {
   if (n >= 0 && n <= 4)
      return count_words[n];
   snprintf(tmp, size, "%d", n);
   return tmp;
}

enum { ROLE_FREE = 0, ROLE_KEPT = 1, ROLE_EXTRA_OPTIONAL = 2, ROLE_EXTRA_MUST = 3, ROLE_USED = 4 };

#define MAX_NEG 4

typedef struct neg {
   sw_spec_t spec;
} neg_t;

static int negative_allowed(const sw_spec_t *spec, int shape, int colour) {
   for (int g = 0; g < spec->ngroups; g++)
      if (spec->groups[g].shape == shape &&
          (spec->groups[g].colour < 0 || spec->groups[g].colour == colour))
         return 0;
   return 1;
}

static void add_neg_single(neg_t *negs, int *nneg, int shape, int colour, int count,
                           int exact) {
   if (*nneg >= MAX_NEG || count < 1 || count > SW_MAX_OBJECTS)
      return;
   neg_t *n = &negs[(*nneg)++];
   memset(n, 0, sizeof *n);
   n->spec.ngroups = 1;
   n->spec.relation = -1;
   n->spec.groups[0].shape = shape;
   n->spec.groups[0].colour = colour;
   n->spec.groups[0].count = count;
   n->spec.groups[0].exact = exact;
}

static void pick_negative(const neg_t *negs, int nneg, char *out, size_t size) {
   char a[80], b[80], both[170], err[8];
   sw_spec_t parsed;
   out[0] = '\0';
   if (nneg == 0)
      return;
   sw_spec_caption(&negs[0].spec, a, sizeof a);
   if (nneg > 1 && negs[0].spec.ngroups == 1 && negs[1].spec.ngroups == 1) {
      sw_spec_caption(&negs[1].spec, b, sizeof b);
      snprintf(both, sizeof both, "%s and %s", a, b);
      if (sw_parse(both, &parsed, err, sizeof err) == 0) {
         snprintf(out, size, "%s", both);
         return;
      }
   }
   if (sw_parse(a, &parsed, err, sizeof err) == 0)
      snprintf(out, size, "%s", a);
}

static const char *const relation_phrase[SW_NRELATIONS] = {
   "to the left of", "to the right of", "above", "below"};
static const int opposite[SW_NRELATIONS] = {SW_RIGHT_OF, SW_LEFT_OF, SW_BELOW, SW_ABOVE};

/* The feedback (into fb), the negative-prompt candidates (negs, in order of preference)
 * and the revised prompt of one check result. 0, or -1 when out of memory. */
static int reflect_core(const sw_spec_t *spec, const sw_check_t *c, sw_buf_t *fb_out,
                        neg_t negs[MAX_NEG], int *nneg_out, char revised[80]) {
   char text[128], noun[40], noun2[40], tmp[16];
   sw_buf_t fb = *fb_out;
   int nneg = 0;

   /* revised prompt */
   sw_spec_t rev = *spec;
   if (rev.ngroups == 1 && !rev.groups[0].exact && rev.groups[0].count == 1 &&
       c->nconstraints > 0 && c->c[0].found > 1)
      rev.groups[0].exact = 1;
   sw_spec_caption(&rev, revised, 80);
   {
      sw_spec_t check;
      char err[8];
      if (sw_parse(revised, &check, err, sizeof err) != 0) /* cannot happen; stay safe */
         sw_spec_caption(spec, revised, 80);
   }

   if (c->pass) {
      sw_buf_put(&fb, "The image matches the prompt.");
   } else {
      /* roles */
      const int ndets = c->ndets;
      int *role = malloc((ndets > 0 ? (size_t)ndets : 1) * 2 * sizeof *role);
      if (role == NULL) {
         *fb_out = fb;
         *nneg_out = 0;
         return -1;
      }
      int *owner = role + (ndets > 0 ? ndets : 1);
      int found[2] = {0, 0}, excess[2] = {0, 0};
      int mentioned[SW_NCOLOURS][SW_NSHAPES] = {{0}};
      for (int i = 0; i < ndets; i++) {
         owner[i] = -1;
         role[i] = ROLE_FREE;
         for (int g = 0; g < spec->ngroups; g++) {
            if (!sw_det_matches(&c->dets[i], &spec->groups[g]))
               continue;
            owner[i] = g;
            found[g]++;
            if (found[g] <= spec->groups[g].count) {
               role[i] = ROLE_KEPT;
            } else if (spec->groups[g].exact) {
               role[i] = ROLE_EXTRA_MUST;
               excess[g]++;
            } else {
               role[i] = ROLE_EXTRA_OPTIONAL;
            }
            break;
         }
      }
      for (int g = 0; g < spec->ngroups; g++) {
         const sw_group_t *grp = &spec->groups[g];
         int deficit = grp->count - found[g];
         int have = found[g];
         if (deficit <= 0)
            continue;
         /* 1. recolour objects of the right shape (only when the group names a colour),
          * 2. reshape objects of the right colour (any colour when the group names none).
          * Spares are taken by role (extras that must go first), then colour, then shape. */
         for (int step = 1; step <= 2 && deficit > 0; step++) {
            if (step == 1 && grp->colour < 0)
               continue;
            for (int pass = 0; pass < 3 && deficit > 0; pass++) {
               const int want_role = pass == 0 ? ROLE_EXTRA_MUST
                                     : pass == 1 ? ROLE_FREE : ROLE_EXTRA_OPTIONAL;
               if (step == 2 && want_role == ROLE_EXTRA_OPTIONAL)
                  continue; /* never reshape an object another group counts */
               for (int colour = 0; colour < SW_NCOLOURS && deficit > 0; colour++) {
                  for (int shape = 0; shape < SW_NSHAPES && deficit > 0; shape++) {
                     if (step == 1 && (shape != grp->shape || colour == grp->colour))
                        continue;
                     if (step == 2 && (shape == grp->shape ||
                                       (grp->colour >= 0 && colour != grp->colour)))
                        continue;
                     int k = 0;
                     for (int i = 0; i < ndets && deficit > 0; i++) {
                        const sw_det_t *d = &c->dets[i];
                        if (role[i] != want_role || d->shape != shape || d->colour != colour)
                           continue;
                        if (role[i] == ROLE_EXTRA_MUST)
                           excess[owner[i]]--;
                        role[i] = ROLE_USED;
                        deficit--;
                        have++;
                        k++;
                     }
                     if (k == 0)
                        continue;
                     /* "the" when the image has one such object, "one" / "another" when
                      * it has several, a number for several at once */
                     int total = 0;
                     for (int i = 0; i < ndets; i++)
                        total += c->dets[i].colour == colour && c->dets[i].shape == shape;
                     const char *article = total == 1 ? "the"
                                           : mentioned[colour][shape] ? "another" : "one";
                     const char *cn = sw_colour_names[colour], *sn = sw_shape_names[shape];
                     if (step == 1 && k == 1)
                        snprintf(text, sizeof text, "Make %s %s %s %s. ", article, cn, sn,
                                 sw_colour_names[grp->colour]);
                     else if (step == 1)
                        snprintf(text, sizeof text, "Make %s %s %ss %s. ",
                                 number(k, tmp, sizeof tmp), cn, sn,
                                 sw_colour_names[grp->colour]);
                     else if (k == 1)
                        snprintf(text, sizeof text, "Turn %s %s %s into a %s. ", article, cn,
                                 sn, sw_shape_names[grp->shape]);
                     else
                        snprintf(text, sizeof text, "Turn %s %s %ss into %ss. ",
                                 number(k, tmp, sizeof tmp), cn, sn, sw_shape_names[grp->shape]);
                     mentioned[colour][shape] += k;
                     sw_buf_put(&fb, text);
                     if (negative_allowed(spec, shape, colour))
                        add_neg_single(negs, &nneg, shape, colour, 1, 0);
                  }
               }
            }
         }
         /* 3. add the rest */
         if (deficit > 0) {
            sw_group_noun(grp, deficit > 1, noun, sizeof noun);
            if (have == 0 && deficit == 1)
               snprintf(text, sizeof text, "Add a %s. ", noun);
            else if (have == 0)
               snprintf(text, sizeof text, "Add %s %s. ", number(deficit, tmp, sizeof tmp),
                        noun);
            else
               snprintf(text, sizeof text, "Add %s more %s. ", number(deficit, tmp, sizeof tmp),
                        noun);
            sw_buf_put(&fb, text);
         }
      }
      /* too many */
      for (int g = 0; g < spec->ngroups; g++) {
         const sw_group_t *grp = &spec->groups[g];
         if (excess[g] <= 0)
            continue;
         sw_group_noun(grp, excess[g] > 1, noun, sizeof noun);
         if (excess[g] == 1)
            snprintf(text, sizeof text, "Remove the extra %s. ", noun);
         else
            snprintf(text, sizeof text, "Remove the %s extra %s. ",
                     number(excess[g], tmp, sizeof tmp), noun);
         sw_buf_put(&fb, text);
         add_neg_single(negs, &nneg, grp->shape, grp->colour, found[g], 1);
      }
      /* the relation */
      for (int k = 0; k < c->nconstraints; k++) {
         const sw_constraint_t *con = &c->c[k];
         if (con->kind != 1 || con->ok)
            continue;
         const int r = spec->relation;
         sw_group_noun(&spec->groups[0], 0, noun, sizeof noun);
         sw_group_noun(&spec->groups[1], 0, noun2, sizeof noun2);
         snprintf(text, sizeof text, "%s the %s %s the %s. ",
                  found[0] > 0 && found[1] > 0 ? "Move" : "Place", noun, relation_phrase[r],
                  noun2);
         sw_buf_put(&fb, text);
         if (con->first_pair[0] >= 0 && nneg < MAX_NEG) {
            const unsigned seen = sw_relations(c->dets[con->first_pair[0]].box,
                                               c->dets[con->first_pair[1]].box);
            neg_t *n = &negs[nneg];
            memset(n, 0, sizeof *n);
            n->spec.ngroups = 2;
            if (seen & (1u << opposite[r])) {
               n->spec.groups[0] = spec->groups[1];
               n->spec.groups[1] = spec->groups[0];
               n->spec.relation = r;
               nneg++;
            } else {
               for (int s = 0; s < SW_NRELATIONS; s++)
                  if (seen & (1u << s)) {
                     n->spec.groups[0] = spec->groups[0];
                     n->spec.groups[1] = spec->groups[1];
                     n->spec.relation = s;
                     nneg++;
                     break;
                  }
            }
         }
      }
      free(role);
      if (fb.len == 0)
         sw_buf_put(&fb, "Redraw the image so that it matches the prompt. ");
      if (fb.len > 0 && fb.data[fb.len - 1] == ' ')
         fb.data[--fb.len] = '\0';
   }
   *fb_out = fb;
   *nneg_out = nneg;
   return 0;
}

/* The object's fields up to (not including) its closing brace. */
static void write_fields(const sw_check_t *c, const sw_buf_t *fb, const char *negative,
                         const char *revised, long round, sw_buf_t *b) {
   sw_buf_put(b, "{\"feedback\":");
   sw_buf_str(b, fb->data != NULL ? fb->data : "");
   if (!c->pass && negative[0] != '\0') {
      sw_buf_put(b, ",\"negative_prompt\":");
      sw_buf_str(b, negative);
   }
   sw_buf_put(b, ",\"revised_prompt\":");
   sw_buf_str(b, revised);
   sw_buf_put(b, c->pass ? ",\"pass\":true,\"score\":" : ",\"pass\":false,\"score\":");
   sw_buf_num(b, c->score, 6);
   sw_buf_put(b, ",\"round\":");
   sw_buf_int(b, round);
   if (fb->oom)
      b->oom = 1;
}

void sw_reflect_json(const sw_spec_t *spec, const sw_check_t *c, long round, sw_buf_t *b) {
   char revised[80], negative[170];
   neg_t negs[MAX_NEG];
   int nneg = 0;
   sw_buf_t fb;
   sw_buf_init(&fb);
   if (reflect_core(spec, c, &fb, negs, &nneg, revised) != 0) {
      b->oom = 1;
      sw_buf_free(&fb);
      return;
   }
   pick_negative(negs, nneg, negative, sizeof negative);
   write_fields(c, &fb, negative, revised, round, b);
   sw_buf_put(b, "}");
   sw_buf_free(&fb);
}

/* ---- several views of one trajectory (assay.reflector-views.draft/1) ----------------- */

/* Whether preview detection d may be an object of group g. The preview is trusted on
 * colours and layout, not shapes (blur turns a small triangle into a square-ish blob or
 * removes it), so an object is known by its colour when its group names one and that tells
 * it apart (by_colour); otherwise by its shape, an ambiguous blob counting as every shape it
 * may be. */
static int preview_may_be(const sw_det_t *d, const sw_group_t *g, int by_colour) {
   return by_colour ? d->colour == g->colour : sw_det_may_match(d, g);
}

/* A preview "shows" a negative candidate when it has, loosely (preview_may_be), what the
 * candidate names:
 *   one object ("a blue triangle", an object to recolour / reshape): such an object;
 *   a count ("three blue squares", too many for an exact group): more such objects than
 *     the prompt's count, not counting objects that surely are another group's (the excess
 *     persists; blur may merge two objects, and then the excess is not confirmed);
 *   a relation ("a blue square left of a red circle"): two distinct such objects in that
 *     relation (by shape when the two objects have the same colour or none). */
static int preview_shows(const sw_spec_t *spec, const neg_t *n, const sw_check_t *p) {
   const sw_spec_t *ns = &n->spec;
   if (ns->ngroups == 1) {
      const sw_group_t *g = &ns->groups[0];
      const int by_colour = g->colour >= 0;
      if (!g->exact) {
         for (int i = 0; i < p->ndets; i++)
            if (preview_may_be(&p->dets[i], g, by_colour))
               return 1;
         return 0;
      }
      int want = g->count - 1, self = -1;
      for (int k = 0; k < spec->ngroups; k++)
         if (spec->groups[k].exact && spec->groups[k].shape == g->shape &&
             spec->groups[k].colour == g->colour) {
            want = spec->groups[k].count;
            self = k;
         }
      int seen = 0;
      for (int i = 0; i < p->ndets; i++) {
         int other = 0;
         for (int k = 0; k < spec->ngroups; k++)
            other |= k != self && sw_det_matches(&p->dets[i], &spec->groups[k]);
         seen += !other && preview_may_be(&p->dets[i], g, by_colour);
      }
      return seen > want;
   }
   if (ns->ngroups == 2 && ns->relation >= 0) {
      const sw_group_t *g0 = &ns->groups[0], *g1 = &ns->groups[1];
      const int by_colour = g0->colour >= 0 && g1->colour >= 0 && g0->colour != g1->colour;
      for (int i = 0; i < p->ndets; i++) {
         if (!preview_may_be(&p->dets[i], g0, by_colour))
            continue;
         for (int j = 0; j < p->ndets; j++)
            if (j != i && preview_may_be(&p->dets[j], g1, by_colour) &&
                (sw_relations(p->dets[i].box, p->dets[j].box) & (1u << ns->relation)))
               return 1;
      }
   }
   return 0;
}

/* The preview is readable when the checker finds at least one object in it (a preview of
 * only background shows nothing of the trajectory, and so neither confirms nor refutes). */
static int preview_readable(const sw_check_t *p) {
   return p->ndets > 0;
}

void sw_reflect_views_json(const sw_spec_t *spec, const sw_check_t *c,
                           const sw_check_t *preview, const char *primary_name, long round,
                           sw_buf_t *b) {
   char revised[80], negative[170], sketch_negative[170];
   neg_t negs[MAX_NEG], kept[MAX_NEG];
   int nneg = 0, nkept = 0;
   sw_buf_t fb;
   sw_buf_init(&fb);
   if (reflect_core(spec, c, &fb, negs, &nneg, revised) != 0) {
      b->oom = 1;
      sw_buf_free(&fb);
      return;
   }
   pick_negative(negs, nneg, sketch_negative, sizeof sketch_negative);
   const int use_preview = preview != NULL && preview_readable(preview);
   int confirmed = 0, dropped = 0;
   if (!use_preview || c->pass || sketch_negative[0] == '\0') {
      snprintf(negative, sizeof negative, "%s", sketch_negative);
   } else {
      for (int k = 0; k < nneg; k++)
         if (preview_shows(spec, &negs[k], preview))
            kept[nkept++] = negs[k];
      pick_negative(kept, nkept, negative, sizeof negative);
      confirmed = negative[0] != '\0';
      dropped = !confirmed;
   }
   write_fields(c, &fb, negative, revised, round, b);
   sw_buf_put(b, ",\"views\":[");
   if (use_preview)
      sw_buf_put(b, "\"preview\",");
   sw_buf_str(b, primary_name);
   sw_buf_put(b, confirmed ? "],\"confirmed_by_preview\":true"
                           : "],\"confirmed_by_preview\":false");
   if (dropped) {
      sw_buf_put(b, ",\"unconfirmed_negative\":");
      sw_buf_str(b, sketch_negative);
   }
   sw_buf_put(b, "}");
   sw_buf_free(&fb);
}
