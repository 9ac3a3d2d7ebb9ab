#pragma once

// The pieces every page is made of (pages.cpp), for the other page files.

#include <string>

#include "web/list_view.h"
#include "web/pages.h"

namespace qabox::web::page {

std::string shortCommit(const std::string& c);
std::string envLink(const std::string& ticket);
std::string stateBadge(EnvState s);
std::string csrfField(const PageContext& c);
std::string layout(const PageContext& c, const std::string& title, const std::string& body,
                   const std::string& bodyAttrs = "");
std::string sortLink(const ListQuery& q, const std::string& column, const std::string& label);
std::string filterForm(const ListQuery& q);
std::string flags(const Environment& e);

}  // namespace qabox::web::page
