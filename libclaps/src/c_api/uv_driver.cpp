// The libuv driver of <claps/claps.h>: a claps::uv_driver behind a handle.
#include "handles.hpp"

#include <claps/uv.hpp>

using claps::c_api::guarded;

struct claps_uv_driver {
  claps_uv_driver(uv_loop_t* loop, claps::engine& engine) : driver(loop, engine) {}
  claps::uv_driver driver;
};

extern "C" {

int claps_uv_driver_new(struct uv_loop_s* loop, claps_engine* engine, claps_uv_driver** out) {
  if (!out) return CLAPS_E_BAD_REQUEST;
  *out = nullptr;
  if (!loop || !engine) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    *out = new claps_uv_driver(loop, *engine->engine);
    return CLAPS_OK;
  });
}

int claps_uv_driver_flush(claps_uv_driver* driver) {
  if (!driver) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    driver->driver.flush();
    return CLAPS_OK;
  });
}

int claps_uv_driver_stop(claps_uv_driver* driver) {
  if (!driver) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    driver->driver.stop();
    return CLAPS_OK;
  });
}

int claps_uv_driver_close(claps_uv_driver* driver, void (*done)(void* user), void* user) {
  if (!driver) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    driver->driver.close([done, user] {
      if (done) done(user);
    });
    return CLAPS_OK;
  });
}

int claps_uv_driver_unref(claps_uv_driver* driver) {
  if (!driver) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    driver->driver.unref();
    return CLAPS_OK;
  });
}

int claps_uv_driver_ref(claps_uv_driver* driver) {
  if (!driver) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    driver->driver.ref();
    return CLAPS_OK;
  });
}

void claps_uv_driver_free(claps_uv_driver* driver) { delete driver; }

}  // extern "C"
