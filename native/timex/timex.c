/*
 * adjtimex(2) with modes = 0: reads the kernel's clock discipline state (sync status,
 * offset, error bounds, frequency, PPS counters) and changes nothing, so it needs no
 * privilege. Exports one function, read(), returning the raw struct timex fields and
 * the call's return value (the clock state: TIME_ERROR = 5 is "not synchronised").
 * Units and scaling are left to the caller (src/collectors/timex.ts).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timex.h>
#include <node_api.h>

static napi_status set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_status s = napi_create_double(env, v, &n);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, obj, key, n);
}

static napi_value read_timex(napi_env env, napi_callback_info info) {
  (void)info;
  struct timex t;
  memset(&t, 0, sizeof t);
  t.modes = 0;
  int state = adjtimex(&t);
  if (state == -1) {
    int e = errno;
    char code[32];
    napi_value err, msg, codev;
    snprintf(code, sizeof code, "%d", e);
    napi_create_string_utf8(env, strerror(e), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codev);
    napi_create_error(env, NULL, msg, &err);
    napi_set_named_property(env, err, "errno", codev);
    napi_throw(env, err);
    return NULL;
  }
  napi_value o;
  if (napi_create_object(env, &o) != napi_ok) return NULL;
  set_number(env, o, "state", state);
  set_number(env, o, "offset", (double)t.offset);
  set_number(env, o, "freq", (double)t.freq);
  set_number(env, o, "maxerror", (double)t.maxerror);
  set_number(env, o, "esterror", (double)t.esterror);
  set_number(env, o, "status", (double)t.status);
  set_number(env, o, "constant", (double)t.constant);
  set_number(env, o, "precision", (double)t.precision);
  set_number(env, o, "tolerance", (double)t.tolerance);
  set_number(env, o, "tick", (double)t.tick);
  set_number(env, o, "ppsfreq", (double)t.ppsfreq);
  set_number(env, o, "jitter", (double)t.jitter);
  set_number(env, o, "shift", (double)t.shift);
  set_number(env, o, "stabil", (double)t.stabil);
  set_number(env, o, "jitcnt", (double)t.jitcnt);
  set_number(env, o, "calcnt", (double)t.calcnt);
  set_number(env, o, "errcnt", (double)t.errcnt);
  set_number(env, o, "stbcnt", (double)t.stbcnt);
  set_number(env, o, "tai", (double)t.tai);
  return o;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "read", NAPI_AUTO_LENGTH, read_timex, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "read", fn) != napi_ok) return NULL;
  return exports;
}
