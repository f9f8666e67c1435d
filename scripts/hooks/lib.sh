# Shared by the azd hooks (sourced). azd loads the environment's values (.azure/<env>/.env: the template's outputs
# and every `azd env set`) into each hook's environment.

# True when CALLER_AUTH (comma-separated) names the mode $1.
uses_auth_mode() {
  case ",$(printf '%s' "${CALLER_AUTH:-function-key}" | tr -d ' ')," in
    *",$1,"*) return 0 ;;
    *) return 1 ;;
  esac
}
