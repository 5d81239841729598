#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

TEST_CASE("throw_error builds the message from its parts") {
  try {
    mpt::throw_error("file ", "a.json", ": byte ", 17, " is not valid UTF-8");
    FAIL("throw_error returned");
  } catch (const mpt::Error& e) {
    CHECK(std::string(e.what()) == "file a.json: byte 17 is not valid UTF-8");
  }
}
