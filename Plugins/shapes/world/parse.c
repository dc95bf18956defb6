/* Plugins/shapes/world/parse.c: the caption grammar (world.py `parse`, `spec_to_caption`).
 *
 *   caption  := "" | group | group " and " group | group " " relation " " group
 *   group    := ("a" | "one") [colour] SHAPE | ("two" | "three" | "four") [colour] SHAPES
 *   relation := "left of" | "right of" | "above" | "below"
 * Lower-cased, split on whitespace (Python's str.split(): ASCII and Unicode white space),
 * at most 8 words; two groups must be distinguishable (different shapes, or both colours
 * given and different); a relation needs "a" on both sides; at most 4 objects in total.
 * The checks run in world.py's order, so a caption is refused exactly when world.py
 * refuses it; the messages are ours (they say what would be understood). */
#include "world.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *const sw_colour_names[SW_NCOLOURS] = {"red", "green", "blue", "yellow"};
const char *const sw_shape_names[SW_NSHAPES] = {"circle", "square", "triangle"};
const char *const sw_relation_names[SW_NRELATIONS] = {"left of", "right of", "above",
                                                      "below"};

enum {
   W_A, W_ONE, W_TWO, W_THREE, W_FOUR,
   W_RED, W_GREEN, W_BLUE, W_YELLOW,
   W_CIRCLE, W_SQUARE, W_TRIANGLE,
   W_CIRCLES, W_SQUARES, W_TRIANGLES,
   W_AND, W_LEFT, W_RIGHT, W_OF, W_ABOVE, W_BELOW,
   W_COUNT
};

/* world.py VOCAB without "<pad>" (which parse refuses as a word). */
static const char *const vocab[W_COUNT] = {
   "a", "one", "two", "three", "four",
   "red", "green", "blue", "yellow",
   "circle", "square", "triangle",
   "circles", "squares", "triangles",
   "and", "left", "right", "of", "above", "below",
};

#define MAX_WORDS 64 /* words remembered; a longer caption is refused anyway */

/* Length of the white space character at p (Python's str.isspace), 0 if none. */
static size_t space_len(const unsigned char *p) {
   if (*p == ' ' || (*p >= 0x09 && *p <= 0x0d) || (*p >= 0x1c && *p <= 0x1f))
      return 1;
   if (p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
      return 2;
   if (p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) /* U+1680 */
      return 3;
   if (p[0] == 0xe2 && p[1] == 0x80 && ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 ||
                                        p[2] == 0xa9 || p[2] == 0xaf))
      return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
   if (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) /* U+205F */
      return 3;
   if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) /* U+3000 */
      return 3;
   return 0;
}

typedef struct word {
   const char *text; /* into the caption; not lower-cased */
   size_t len;
   int id;           /* W_..., or -1 */
} word_t;

static int lookup(const char *text, size_t len) {
   for (int i = 0; i < W_COUNT; i++) {
      const char *v = vocab[i];
      size_t k = 0;
      while (k < len && v[k] != '\0') {
         char ch = text[k];
         if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
         if (ch != v[k])
            break;
         k++;
      }
      if (k == len && v[k] == '\0')
         return i;
   }
   return -1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(char *err, size_t size, const char *fmt, ...) {
   if (err != NULL && size > 0) {
      va_list args;
      va_start(args, fmt);
      vsnprintf(err, size, fmt, args);
      va_end(args);
   }
   return -1;
}

/* A word for a message: lower-cased, at most 40 bytes, control bytes as '?'. */
static void show(const word_t *w, char out[48]) {
   size_t n = w->len > 40 ? 40 : w->len;
   for (size_t i = 0; i < n; i++) {
      char ch = w->text[i];
      if (ch >= 'A' && ch <= 'Z')
         ch = (char)(ch - 'A' + 'a');
      if ((unsigned char)ch < 0x20 || ch == 0x7f)
         ch = '?';
      out[i] = ch;
   }
   if (w->len > 40) {
      memcpy(out + n, "...", 3);
      n += 3;
   }
   out[n] = '\0';
}

static int word_is(const word_t *w, const char *const *list) {
   char s[48];
   show(w, s);
   for (; *list != NULL; list++)
      if (strcmp(s, *list) == 0)
         return 1;
   return 0;
}

static const char *const colourish[] = {
   "orange", "purple", "violet", "pink", "white", "black", "gray", "grey", "brown", "cyan",
   "magenta", "indigo", "gold", "golden", "silver", "teal", "turquoise", "navy", "lime",
   "crimson", "scarlet", "maroon", "beige", "tan", "olive", "colored", "coloured", NULL};
static const char *const shapeish[] = {
   "hexagon", "hexagons", "pentagon", "pentagons", "rectangle", "rectangles", "disk",
   "disks", "disc", "discs", "dot", "dots", "ball", "balls", "sphere", "spheres", "box",
   "boxes", "cube", "cubes", "star", "stars", "oval", "ovals", "ellipse", "ellipses",
   "diamond", "diamonds", "heart", "hearts", "shape", "shapes", "object", "objects",
   "polygon", "polygons", "cross", "crosses", "ring", "rings", "line", "lines", "block",
   "blocks", "rhombus", "octagon", "octagons", "pyramid", "pyramids", "cone", "cones", NULL};

/* `w` is the first unknown word, at index i (0-based); prev is the id of the word before it
 * (-2 when it is the first word). */
static int unknown_word(const word_t *w, int i, int prev, char *err, size_t size) {
   char s[48];
   show(w, s);
   if (word_is(w, colourish))
      return fail(err, size, "unknown word \"%s\"; colours are red, green, blue, yellow", s);
   if (word_is(w, shapeish) || (prev >= W_A && prev <= W_YELLOW))
      return fail(err, size,
                  "unknown word \"%s\"; shapes are circle, square, triangle (plural: "
                  "circles, squares, triangles)", s);
   if (i == 0)
      return fail(err, size,
                  "unknown word \"%s\"; a caption starts with \"a\" or a number word "
                  "(one, two, three, four)", s);
   if (prev >= W_CIRCLE && prev <= W_TRIANGLES)
      return fail(err, size,
                  "unknown word \"%s\"; two objects are joined by \"and\", \"left of\", "
                  "\"right of\", \"above\" or \"below\"", s);
   return fail(err, size,
               "unknown word \"%s\"; the words are a, one, two, three, four, red, green, "
               "blue, yellow, circle(s), square(s), triangle(s), and, left of, right of, "
               "above, below", s);
}

static int parse_group(const word_t *w, int n, int *pos, sw_group_t *g, char *err,
                       size_t size) {
   int i = *pos;
   char s[48], d[48];
   if (i >= n)
      return fail(err, size,
                  "expected \"a\" or a number word (one, two, three, four) after \"%s\", "
                  "got the end of the caption", (show(&w[i - 1], s), s));
   const int det = w[i].id;
   if (det == W_A) {
      g->count = 1;
      g->exact = 0;
   } else if (det >= W_ONE && det <= W_FOUR) {
      g->count = det - W_ONE + 1;
      g->exact = 1;
   } else {
      show(&w[i], s);
      return fail(err, size,
                  "expected \"a\" or a number word (one, two, three, four) at word %d, "
                  "got \"%s\"", i + 1, s);
   }
   show(&w[i], d);
   i++;
   g->colour = -1;
   if (i < n && w[i].id >= W_RED && w[i].id <= W_YELLOW) {
      g->colour = w[i].id - W_RED;
      i++;
   }
   if (i >= n)
      return fail(err, size,
                  "expected a shape (circle, square, triangle) after \"%s\", got the end "
                  "of the caption", (show(&w[i - 1], s), s));
   const int sw = w[i].id;
   show(&w[i], s);
   if (g->count == 1) {
      if (sw < W_CIRCLE || sw > W_TRIANGLE)
         return fail(err, size,
                     "expected a singular shape (circle, square, triangle) after \"%s\", "
                     "got \"%s\"", d, s);
      g->shape = sw - W_CIRCLE;
   } else {
      if (sw < W_CIRCLES || sw > W_TRIANGLES)
         return fail(err, size,
                     "expected a plural shape (circles, squares, triangles) after \"%s\", "
                     "got \"%s\"", d, s);
      g->shape = sw - W_CIRCLES;
   }
   *pos = i + 1;
   return 0;
}

static int distinguishable(const sw_group_t *a, const sw_group_t *b) {
   if (a->shape != b->shape)
      return 1;
   return a->colour >= 0 && b->colour >= 0 && a->colour != b->colour;
}

int sw_parse(const char *caption, sw_spec_t *spec, char *err, size_t err_size) {
   word_t words[MAX_WORDS];
   int n = 0, total = 0;
   memset(spec, 0, sizeof *spec);
   spec->relation = -1;
   if (err != NULL && err_size > 0)
      err[0] = '\0';
   if (caption == NULL)
      return fail(err, err_size, "no caption");
   const unsigned char *p = (const unsigned char *)caption;
   int prev = -2;
   while (*p != '\0') {
      size_t sp = space_len(p);
      if (sp > 0) {
         p += sp;
         continue;
      }
      const unsigned char *start = p;
      while (*p != '\0' && space_len(p) == 0)
         p++;
      word_t w = {(const char *)start, (size_t)(p - start), -1};
      w.id = lookup(w.text, w.len);
      if (w.id < 0) /* world.py checks every word before anything else */
         return unknown_word(&w, total, prev, err, err_size);
      if (n < MAX_WORDS)
         words[n++] = w;
      prev = w.id;
      total++;
   }
   if (total == 0)
      return 0;
   if (total > SW_MAX_TOKENS)
      return fail(err, err_size, "too many words (%d); a caption has at most %d words",
                  total, SW_MAX_TOKENS);

   int i = 0;
   if (parse_group(words, n, &i, &spec->groups[0], err, err_size) != 0)
      return -1;
   spec->ngroups = 1;
   if (i < n) {
      char s[48];
      const int id = words[i].id;
      if (id == W_AND) {
         i++;
      } else if (id == W_LEFT || id == W_RIGHT) {
         if (i + 1 >= n || words[i + 1].id != W_OF)
            return fail(err, err_size, "expected \"of\" after \"%s\"",
                        id == W_LEFT ? "left" : "right");
         spec->relation = id == W_LEFT ? SW_LEFT_OF : SW_RIGHT_OF;
         i += 2;
      } else if (id == W_ABOVE || id == W_BELOW) {
         spec->relation = id == W_ABOVE ? SW_ABOVE : SW_BELOW;
         i++;
      } else {
         show(&words[i], s);
         return fail(err, err_size,
                     "expected \"and\" or a relation (left of, right of, above, below) at "
                     "word %d, got \"%s\"", i + 1, s);
      }
      if (parse_group(words, n, &i, &spec->groups[1], err, err_size) != 0)
         return -1;
      spec->ngroups = 2;
      if (i != n) {
         char rest[160];
         size_t len = 0;
         for (int k = i; k < n && len + 50 < sizeof rest; k++) {
            show(&words[k], s);
            len += (size_t)snprintf(rest + len, sizeof rest - len, "%s%s", k > i ? " " : "",
                                    s);
         }
         return fail(err, err_size, "unexpected words after the second object: \"%s\"",
                     rest);
      }
      const sw_group_t *g0 = &spec->groups[0], *g1 = &spec->groups[1];
      if (!distinguishable(g0, g1))
         return fail(err, err_size,
                     "the two objects must differ in shape, or both name different colours "
                     "(e.g. \"a red circle and a blue circle\")");
      if (spec->relation >= 0 &&
          (g0->count != 1 || g1->count != 1 || g0->exact || g1->exact))
         return fail(err, err_size,
                     "a relation needs one object on each side, each written \"a ...\" "
                     "(e.g. \"a red circle left of a blue square\")");
   }
   int objects = 0;
   for (int k = 0; k < spec->ngroups; k++)
      objects += spec->groups[k].count;
   if (objects > SW_MAX_OBJECTS)
      return fail(err, err_size, "at most %d objects in total; the caption asks for %d",
                  SW_MAX_OBJECTS, objects);
   return 0;
}

static const char *const number_words[5] = {"", "one", "two", "three", "four"};

size_t sw_group_noun(const sw_group_t *g, int plural, char *out, size_t size) {
   int len = snprintf(out, size, "%s%s%s%s", g->colour >= 0 ? sw_colour_names[g->colour] : "",
                      g->colour >= 0 ? " " : "", sw_shape_names[g->shape], plural ? "s" : "");
   return len < 0 ? 0 : (size_t)len >= size ? size - 1 : (size_t)len;
}

size_t sw_group_words(const sw_group_t *g, char *out, size_t size) {
   char noun[32];
   sw_group_noun(g, g->count > 1, noun, sizeof noun);
   const char *det = g->count == 1 ? (g->exact ? "one" : "a")
                                   : number_words[g->count >= 1 && g->count <= 4 ? g->count : 0];
   int len = snprintf(out, size, "%s %s", det, noun);
   return len < 0 ? 0 : (size_t)len >= size ? size - 1 : (size_t)len;
}

size_t sw_spec_caption(const sw_spec_t *spec, char *out, size_t size) {
   char a[40], b[40];
   int len;
   if (spec->ngroups == 0) {
      len = snprintf(out, size, "%s", "");
   } else {
      sw_group_words(&spec->groups[0], a, sizeof a);
      if (spec->ngroups == 1) {
         len = snprintf(out, size, "%s", a);
      } else {
         sw_group_words(&spec->groups[1], b, sizeof b);
         len = snprintf(out, size, "%s %s %s", a,
                        spec->relation >= 0 ? sw_relation_names[spec->relation] : "and", b);
      }
   }
   return len < 0 ? 0 : (size_t)len >= size ? size - 1 : (size_t)len;
}
